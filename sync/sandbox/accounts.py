"""The sandbox's one account per platform. These are fake, public values: `.env.example` sets
the same ones, so a fresh `make run` pushes to the sandbox without any real account."""

YESPO_API_KEY = "sandbox-yespo-api-key"
IVVY_API_KEY = "sandbox-ivvy-key"
IVVY_API_SECRET = "sandbox-ivvy-secret"
CENDYN_ACCOUNT_ID = "sandbox-account"
CENDYN_SECRET = "sandbox-cendyn-secret"
LOOPS_API_KEY = "sandbox-loops-api-key"
