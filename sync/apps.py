from django.apps import AppConfig


class SyncConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "sync"
    verbose_name = "Sync"

    def ready(self):
        from sync import checks  # noqa: F401  (registers the system checks)
        from sync.signals import register_signal_handlers

        register_signal_handlers()
        checks.warn_at_start_up()
