"""The contact form's long selects (time zones, countries, languages), rendered once.

Django renders a select through one template include per option: the 600 time zones, 249
countries and 184 languages cost the contact page about a quarter of its time, on every view
and on every save that shows the form again. Their options never change while a process
runs, so each select's HTML is rendered once, through its own templates, with nothing
selected; a later render copies it and marks the selected option, the one Django's
`ChoiceWidget.optgroups` would mark. `tests/contacts/test_widgets.py` checks the copy
against the widget's own render, value by value.
"""

from django.forms.widgets import Select
from django.utils.choices import BaseChoiceIterator, normalize_choices
from django.utils.functional import cached_property
from django.utils.html import escape
from django.utils.safestring import mark_safe
from django.utils.translation import get_language
from unfold.widgets import UnfoldAdminSelect2Widget, UnfoldAdminSelectWidget

RENDERED_LIMIT = 64  # distinct (name, attributes, choices) a process keeps; a page uses 3


class ChoicesListedOnce(BaseChoiceIterator):
    """The choices `func` returns, normalized on first use and then kept: Django's iterator
    for callable choices calls and normalizes them anew on every pass (600 time zones cost
    milliseconds each time). For a list that does not change while the process runs."""

    def __init__(self, func):
        self.func = func

    @cached_property
    def _choices(self) -> list:
        return normalize_choices(self.func())

    def __iter__(self):
        return iter(self._choices)

    def __copy__(self):
        return self  # never changed: each form's field and widget may share it

    def __deepcopy__(self, memo):
        return self


class OptionsRenderedOnce(Select):
    """A single select whose options are rendered once per process and reused."""

    _rendered: dict = {}  # shared by the subclasses: the key names the class

    def render(self, name, value, attrs=None, renderer=None):
        choices = list(self.choices)
        if self.allow_multiple_selected or any(
            isinstance(label, (list, tuple)) for _, label in choices
        ):
            return super().render(name, value, attrs, renderer)  # groups: Django's own way
        final_attrs = self.build_attrs(self.attrs, attrs)
        key = (
            type(self),
            self.template_name,
            name,
            self.is_required,
            tuple(sorted(final_attrs.items())),
            tuple(choices),
            get_language(),
            renderer,
        )
        try:
            unselected = self._rendered.get(key)
        except TypeError:  # an attribute or label that cannot be a key: not kept
            return super().render(name, value, attrs, renderer)
        if unselected is None:
            unselected = str(super().render(name, [], attrs, renderer))  # nothing selected
            if len(self._rendered) >= RENDERED_LIMIT:
                self._rendered.clear()
            self._rendered[key] = unselected
        return mark_safe(_select(unselected, choices, self.format_value(value)))


def _select(html: str, choices, selected_values: list[str]) -> str:
    """`html` with its first option whose value is among `selected_values` selected, as
    `optgroups` selects it (the first match only). Labels are escaped in `html`, so the
    first `<option value="…">` of a value is that option's own tag."""
    for option_value, _label in choices:
        if option_value is None:
            option_value = ""
        if str(option_value) in selected_values:
            tag = f'<option value="{escape(option_value)}">'
            return html.replace(tag, f'<option value="{escape(option_value)}" selected>', 1)
    return html


class FixedChoicesSelect(OptionsRenderedOnce, UnfoldAdminSelectWidget):
    """unfold's select (the admin's default for a field with choices), rendered once."""


class FixedChoicesSelect2(OptionsRenderedOnce, UnfoldAdminSelect2Widget):
    """unfold's searchable select, rendered once."""
