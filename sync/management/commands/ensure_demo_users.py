import json
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand

from sync.roles import ROLES

PASSWORDS_FILE = ".demo-passwords"  # git-ignored, like .admin-password
USERNAMES = {"Marketing staff": "marketing", "Sync admins": "syncadmin", "Managers": "manager"}


class Command(BaseCommand):
    help = (
        "Create one demo user per role once, each with a random password kept in "
        ".demo-passwords (git-ignored), and print the logins. For development machines only."
    )

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://127.0.0.1:8000/admin/")

    def handle(self, *args, url, **options):
        path = Path(settings.BASE_DIR) / PASSWORDS_FILE
        passwords = json.loads(path.read_text()) if path.exists() else {}
        User = get_user_model()
        for role in ROLES:
            username = USERNAMES[role]
            user = User.objects.filter(username=username).first()
            if user is None or username not in passwords:
                passwords[username] = secrets.token_urlsafe(12)
                user = user or User(username=username, email=f"{username}@example.com")
                user.is_staff = True
                user.set_password(passwords[username])
                user.save()
                user.groups.set([Group.objects.get(name=role)])
            self.stdout.write(f"{role}: {url}  user: {username}  password: {passwords[username]}")
        path.write_text(json.dumps(passwords, indent=2) + "\n")
        path.chmod(0o600)
