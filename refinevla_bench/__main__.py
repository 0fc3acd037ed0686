"""`python -m refinevla_bench` runs the same CLI as the `refinevla-bench` script."""

from refinevla_bench.harness.cli import main

main()
