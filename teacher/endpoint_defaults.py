"""Where the `openai` teacher connects by default, and where its key is read from: shared by
the CLI (which must not import the OpenAI client to show its options) and the teacher."""

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"  # the key is only ever read from the environment
DEFAULT_MODEL = "gpt-4o-mini"
