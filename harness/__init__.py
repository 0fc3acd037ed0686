"""The evaluation harness: suites, simulator backends, runner, episode records, CLI."""
