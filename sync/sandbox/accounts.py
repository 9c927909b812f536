"""The sandbox's one account per platform. These are fake, public values: `.env.example` sets
the same ones, so a fresh `make run` pushes to the sandbox without any real account."""

YESPO_API_KEY = "sandbox-yespo-api-key"
IVVY_API_KEY = "sandbox-ivvy-key"
IVVY_API_SECRET = "sandbox-ivvy-secret"
CENDYN_ACCOUNT_ID = "sandbox-account"
CENDYN_SECRET = "sandbox-cendyn-secret"
LOOPS_API_KEY = "sandbox-loops-api-key"

# The environment variables `.env.example` sets to these values, by credential: a sandbox
# destination names them (the outbound policy allows only SYNC_CREDENTIAL_… names).
ENVIRONMENT = {
    "SYNC_CREDENTIAL_YESPO_API_KEY": YESPO_API_KEY,
    "SYNC_CREDENTIAL_IVVY_API_KEY": IVVY_API_KEY,
    "SYNC_CREDENTIAL_IVVY_API_SECRET": IVVY_API_SECRET,
    "SYNC_CREDENTIAL_CENDYN_SECRET": CENDYN_SECRET,
    "SYNC_CREDENTIAL_LOOPS_API_KEY": LOOPS_API_KEY,
}
