"""Settings, read from the environment (and an optional `.env` file) with django-environ.

Every variable is listed in `.env.example` and README. `DJANGO_ENV` is `development` (the
default) or `production`; production refuses to start without a real `SECRET_KEY`.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from django.templatetags.static import static

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DJANGO_ENV = env.str("DJANGO_ENV", default="development")
if DJANGO_ENV not in ("development", "production"):
    raise ImproperlyConfigured(f"DJANGO_ENV must be development or production, not {DJANGO_ENV!r}")
IS_PRODUCTION = DJANGO_ENV == "production"

if IS_PRODUCTION:
    SECRET_KEY = env.str("SECRET_KEY")  # required: ImproperlyConfigured when missing
else:
    SECRET_KEY = env.str("SECRET_KEY", default="development-only-not-a-secret")

DEBUG = env.bool("DEBUG", default=not IS_PRODUCTION)
ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=[] if IS_PRODUCTION else ["127.0.0.1", "localhost"]
)
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_TZ = True
LANGUAGE_CODE = "en-us"
USE_I18N = True

INSTALLED_APPS = [
    # django-unfold before django.contrib.admin: its templates override the admin's, and its
    # app config makes `admin.site` an UnfoldAdminSite. The contrib apps restyle
    # django-import-export's and django-simple-history's pages.
    "unfold",
    "unfold.contrib.import_export",
    "unfold.contrib.simple_history",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "django_tasks",
    "django_tasks_db",
    "import_export",
    "simple_history",
    "contacts",
    "sync",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "sync.middleware.current_user_middleware",
    "simple_history.middleware.HistoryRequestMiddleware",  # the user in contacts' history
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks
]

# Repeated failed admin logins are throttled (django-axes): after AXES_FAILURE_LIMIT failures
# for one username from one address, that pair is locked out for AXES_COOLOFF_MINUTES.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_MINUTES", default=15.0) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False  # lockouts are still logged; routine bookkeeping is not

# unfold's login form has no hidden `next` field: a login without `?next=` lands here rather
# than on Django's /accounts/profile/ (which this site does not have).
LOGIN_REDIRECT_URL = "admin:index"

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASE_URL = env.str("DATABASE_URL", default="") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
DATABASES = {"default": env.db_url_config(DATABASE_URL)}
# Persistent connections: a connection is kept for this many seconds and reused by the next
# request (or worker loop) of the same process and thread, instead of a new one each time
# (on PostgreSQL a backend process, authentication and Django's set-up per request). Each
# gunicorn worker, sync_worker and scheduler holds one; threads never share one. Checked
# before reuse (CONN_HEALTH_CHECKS), so one the database dropped is replaced, not failed on.
# 0: a connection per request (Django's default, and development's here).
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60 if IS_PRODUCTION else 0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A worker writes beside the web server: WAL lets readers go on during a write,
    # IMMEDIATE takes the write lock at BEGIN (no deadlock on lock upgrade), and the
    # timeout makes a writer wait for the lock instead of failing at once.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": env.float("SQLITE_BUSY_TIMEOUT", default=20.0),
        }
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# URL form fields read a scheme-less address as https (Django 6's default; destinations are
# https-only anyway).
FORMS_URLFIELD_ASSUME_HTTPS = True

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if IS_PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

if IS_PRODUCTION:
    # Static files served by the app itself under gunicorn (runserver serves them in
    # development): run `manage.py collectstatic` at deploy.
    MIDDLEWARE.insert(1, "whitenoise.middleware.WhiteNoiseMiddleware")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    if env.bool("BEHIND_TLS_PROXY", default=False):
        # The proxy terminates TLS and says so in this header; trust it only when told to.
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
SILENCED_SYSTEM_CHECKS = [
    # HSTS preload submits the domain to browsers' built-in lists, hard to undo: that is the
    # customer's decision for their own domain, not a default of ours (README, Production).
    "security.W021",
]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # No credential reaches a log line, whatever an exception or a platform's answer held.
    "filters": {"scrub_secrets": {"()": "sync.redaction.ScrubSecretsFilter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["scrub_secrets"]},
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}

# -- The admin's look (django-unfold): sidebar per role, dark mode (its toggle), our styles.
UNFOLD = {
    "SITE_TITLE": "Contact sync",
    "SITE_HEADER": "Contact sync",
    "SITE_SYMBOL": "sync",
    "SHOW_VIEW_ON_SITE": False,
    "STYLES": [lambda request: static("sync/sync.css")],
    "SCRIPTS": [lambda request: static("sync/sync.js")],
    "SITE_FAVICONS": [
        {"rel": "icon", "type": "image/svg+xml", "href": lambda request: static("sync/favicon.svg")}
    ],
    "SIDEBAR": {"show_search": False, "navigation": "sync.navigation.sidebar"},
}

# -- CSV import and export of contacts (django-import-export; contacts/resources.py)
# A confirmed import is written in chunks of IMPORT_CHUNK_ROWS rows, one transaction each, and
# the preview writes nothing (contacts/services.py); pushes wait until the last chunk.
IMPORT_EXPORT_USE_TRANSACTIONS = True
# Import needs the permission to add contacts (Marketing staff, Sync admins); export the
# permission to view them (Managers too). See sync/roles.py.
IMPORT_EXPORT_IMPORT_PERMISSION_CODE = "add"
IMPORT_EXPORT_EXPORT_PERMISSION_CODE = "view"
# Off on purpose: in 4.4.3 it only strips one leading "=" (leaving "+", "-" and "@" cells
# live, and losing the character). ContactResource.export_field neutralises all of them.
IMPORT_EXPORT_ESCAPE_FORMULAE_ON_EXPORT = False
# Where an uploaded CSV waits between the preview and the confirmation: storage every web
# host shares when there are several (e.g. import_export.tmp_storages.MediaStorage).
IMPORT_EXPORT_TMP_STORAGE_CLASS = env.str(
    "IMPORT_EXPORT_TMP_STORAGE_CLASS", default="import_export.tmp_storages.TempFolderStorage"
)
# Bounds of one import file (larger files are refused before they are read), and the rows
# written per transaction: each chunk holds SQLite's write lock well under a second.
IMPORT_MAX_BYTES = env.int("IMPORT_MAX_BYTES", default=50 * 1024 * 1024)
IMPORT_MAX_ROWS = env.int("IMPORT_MAX_ROWS", default=200_000)
IMPORT_CHUNK_ROWS = env.int("IMPORT_CHUNK_ROWS", default=200)
# The rows a background import (or a skipping import in the request) writes per transaction,
# in bulk (contacts/bulk.py: a few statements a chunk, well under a second of SQLite's write
# lock). Each chunk commits with the job's progress, and on SQLite that UPDATE rewrites the
# job's row with its stored file (9 MB for 100,000 rows): fewer chunks, far less written.
IMPORT_BACKGROUND_CHUNK_ROWS = env.int("IMPORT_BACKGROUND_CHUNK_ROWS", default=1000)
# A file of more lines than this is stored in the database and checked and imported by a
# worker, with a progress page (contacts.services.import_job_*); a smaller one in the request.
IMPORT_BACKGROUND_ROWS = env.int("IMPORT_BACKGROUND_ROWS", default=1000)

# -- History of contacts and their children (django-simple-history)
# Reverting would write an old content_version back, and the sync engine would take the
# contact for unchanged: history is for reading; edits go through the contact's page.
SIMPLE_HISTORY_REVERT_DISABLED = True

# -- Background work: Django's Tasks API (the django-tasks backport; Django 6 has it built in).
# Queued work goes to django-tasks-db's table and runs in `python manage.py db_worker`.
TASKS = {
    "default": {"BACKEND": env.str("TASKS_BACKEND", default="django_tasks_db.DatabaseBackend")},
}

# -- Sync engine
# immediate: a contact saved on its own page is pushed right after commit, one try per
# destination, so the next page shows the outcome. queued: the push goes to the worker.
SYNC_ON_SAVE_MODE = env.str("SYNC_ON_SAVE_MODE", default="queued" if IS_PRODUCTION else "immediate")
if SYNC_ON_SAVE_MODE not in ("immediate", "queued"):
    raise ImproperlyConfigured("SYNC_ON_SAVE_MODE must be immediate or queued")
SYNC_MAX_ATTEMPTS = env.int("SYNC_MAX_ATTEMPTS", default=8)
SYNC_RETRY_BASE_SECONDS = env.float("SYNC_RETRY_BASE_SECONDS", default=10.0)
SYNC_RETRY_MAX_SECONDS = env.float("SYNC_RETRY_MAX_SECONDS", default=3600.0)
# A contact or task held longer than this by a worker is taken back by the scheduler.
SYNC_LEASE_SECONDS = env.float("SYNC_LEASE_SECONDS", default=300.0)
SYNC_CHUNK_SIZE = env.int("SYNC_CHUNK_SIZE", default=100)  # contacts per task, one by one
SYNC_BULK_CHUNK_SIZE = env.int("SYNC_BULK_CHUNK_SIZE", default=1000)  # per batch call
# contacts a run's planning marks and queues per transaction (sync.services.run_prepare)
SYNC_PLAN_BATCH = env.int("SYNC_PLAN_BATCH", default=10000)
# Contacts whose requests one worker keeps in flight at once per destination, pushing one
# contact per request (sync/inflight.py); also the size of the destination's connection pool.
SYNC_REQUESTS_IN_FLIGHT = max(1, env.int("SYNC_REQUESTS_IN_FLIGHT", default=8))
SYNC_SCHEDULER_INTERVAL = env.float("SYNC_SCHEDULER_INTERVAL", default=5.0)
# Contacts per destination read back once a day by the scheduler (0: no daily pass).
SYNC_RECONCILE_SAMPLE = env.int("SYNC_RECONCILE_SAMPLE", default=100)
# Polling (sync/polling.py): minutes between two polls of a destination (Loops: daily, its
# connector says), and contacts asked about per poll where a platform is asked per contact.
SYNC_POLL_INTERVAL_MINUTES = env.float("SYNC_POLL_INTERVAL_MINUTES", default=15.0)
SYNC_POLL_SAMPLE = env.int("SYNC_POLL_SAMPLE", default=100)
# Outbound calls to the platforms: a proxy and a CA bundle, if your network needs them (the
# connectors do not read HTTPS_PROXY or REQUESTS_CA_BUNDLE from the environment per call).
# The public base URL of this app (https://contacts.example.com): each destination's inbound
# URL is built from it. Blank: no webhook can reach us (the destination page says so).
SYNC_PUBLIC_URL = env.str("SYNC_PUBLIC_URL", default="")
SYNC_HTTPS_PROXY = env.str("SYNC_HTTPS_PROXY", default="")
SYNC_CA_BUNDLE = env.str("SYNC_CA_BUNDLE", default="")
# Plain-http destinations on this machine's loopback (the sandbox). Off in production; a
# system check warns when it is on there (bench/production.py turns it on for the sandbox).
SYNC_ALLOW_LOOPBACK = env.bool("SYNC_ALLOW_LOOPBACK", default=not IS_PRODUCTION)
# What a destination may name and reach (sync/policy.py). Credential variables: names with
# this prefix, or listed explicitly; never SECRET_KEY, DATABASE_URL, EMAIL_* and the like.
SYNC_CREDENTIAL_PREFIX = env.str("SYNC_CREDENTIAL_PREFIX", default="SYNC_CREDENTIAL_")
SYNC_CREDENTIAL_NAMES = env.list("SYNC_CREDENTIAL_NAMES", default=[])
# Hosts beyond those each platform serves (a platform's new domain, a private relay), and
# the private networks a connection may land on (CIDRs, for a private deployment).
SYNC_EXTRA_HOSTS = env.list("SYNC_EXTRA_HOSTS", default=[])
SYNC_ALLOWED_PRIVATE_NETWORKS = env.list("SYNC_ALLOWED_PRIVATE_NETWORKS", default=[])
SYNC_ATTEMPT_RETENTION_DAYS = env.int("SYNC_ATTEMPT_RETENTION_DAYS", default=90)
# Finished rows of django-tasks-db's task table are pruned after this (the scheduler, daily).
SYNC_TASK_RETENTION_DAYS = env.int("SYNC_TASK_RETENTION_DAYS", default=7)
# Sync admins get an email when a destination's failure rate over the last hour passes this
# (counted once at least SYNC_ALERT_MIN_ATTEMPTS pushes were tried in that hour).
SYNC_ALERT_FAILURE_RATE = env.float("SYNC_ALERT_FAILURE_RATE", default=0.2)
SYNC_ALERT_MIN_ATTEMPTS = env.int("SYNC_ALERT_MIN_ATTEMPTS", default=10)
# Inbound alerts (sync.alerts.inbound_silence_check / inbound_refusals_check): a destination
# that had events and received none for this many hours; refused deliveries in the last hour
# at least SYNC_ALERT_REFUSALS_MIN and over SYNC_ALERT_REFUSALS_FACTOR times the usual rate.
SYNC_ALERT_INBOUND_SILENT_HOURS = env.float("SYNC_ALERT_INBOUND_SILENT_HOURS", default=24)
SYNC_ALERT_REFUSALS_MIN = env.int("SYNC_ALERT_REFUSALS_MIN", default=20)
SYNC_ALERT_REFUSALS_FACTOR = env.float("SYNC_ALERT_REFUSALS_FACTOR", default=5.0)

EMAIL_BACKEND = env.str(
    "EMAIL_BACKEND",
    default="django.core.mail.backends.smtp.EmailBackend"
    if IS_PRODUCTION
    else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="contact-sync@localhost")
