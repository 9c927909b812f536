"""Text filters for the admin's own templates."""

from django import template
from django.db.models import Model
from django.utils.text import capfirst

register = template.Library()


@register.filter
def heading(value):
    """capfirst for a label (an app's or a model's verbose name); a record is shown as its
    owner named it. The header's breadcrumb ran capfirst over both, so a destination named
    "iVvy (sandbox)" read "IVvy (sandbox)"."""
    if isinstance(value, Model):
        return str(value)
    return capfirst(value)
