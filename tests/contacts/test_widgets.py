"""The contact page's shortcuts show exactly what Django and unfold would: the long selects,
rendered once and copied, the same options with the same one selected; the inlines' declared
fields, the ones Django finds."""

import pytest
from django.contrib import admin
from django.urls import reverse
from unfold.widgets import UnfoldAdminSelect2Widget, UnfoldAdminSelectWidget

from contacts import validators, widgets
from contacts.demo import seed_demo_contacts
from contacts.forms import ContactForm
from contacts.models import Contact

VALUES = [None, "", "GB", "Europe/London", "en", "zz", "<b>", ["GB"], "America/New_York"]


def _stock_render(widget, name, value, attrs):
    """The render of the unfold widget this one extends, option by option."""
    stock = next(c for c in type(widget).__mro__ if c.__module__.startswith("unfold."))
    return stock.render(widget, name, value, attrs)


@pytest.mark.parametrize("name", ["language", "country", "time_zone"])
@pytest.mark.parametrize("value", VALUES)
def test_each_long_select_renders_as_its_widget_does(name, value):
    widget = ContactForm.base_fields[name].widget
    assert isinstance(widget, widgets.OptionsRenderedOnce)
    attrs = {"id": f"id_{name}"}
    first = widget.render(name, value, attrs)
    again = widget.render(name, value, attrs)  # from the kept HTML
    assert first == again == _stock_render(widget, name, value, attrs)
    assert again.count(" selected>") <= 1


def test_a_value_listed_twice_is_selected_once_the_first_time():
    choices = [("", "---------"), ("a", "A"), ("b", "B & co"), ("a", "A again")]
    widget = widgets.FixedChoicesSelect(choices=choices)
    html = widget.render("x", "a")
    assert html == UnfoldAdminSelectWidget.render(widget, "x", "a")
    assert html.count(" selected>") == 1
    assert '<option value="a" selected>A</option>' in html


def test_other_attributes_and_choices_are_rendered_apart():
    narrow = widgets.FixedChoicesSelect2(choices=[("a", "A"), ("b", "B")])
    wide = widgets.FixedChoicesSelect2(choices=[("a", "A"), ("b", "B"), ("c", "C")])
    for widget in (narrow, wide):
        for attrs in ({"id": "one"}, {"id": "two", "required": True}):
            assert widget.render("z", "b", attrs) == UnfoldAdminSelect2Widget.render(
                widget, "z", "b", attrs
            )


def test_grouped_choices_are_left_to_django():
    widget = widgets.FixedChoicesSelect(choices=[("Europe", [("GB", "UK"), ("FR", "France")])])
    assert widget.render("g", "FR") == UnfoldAdminSelectWidget.render(widget, "g", "FR")


@pytest.mark.django_db
def test_the_contact_page_uses_them_and_shows_the_contacts_values(admin_client_logged):
    seed_demo_contacts(1)
    contact = Contact.objects.get()
    contact.time_zone, contact.country, contact.language = "Asia/Tokyo", "JP", "ja"
    contact.save()
    response = admin_client_logged.get(reverse("admin:contacts_contact_change", args=[contact.pk]))
    form = response.context["adminform"].form
    for name in ("language", "country", "time_zone"):
        assert isinstance(form.fields[name].widget, widgets.OptionsRenderedOnce), name
    html = response.content.decode()
    for value in ("Asia/Tokyo", "JP", "ja"):
        assert html.count(f'<option value="{value}" selected>') == 1, value
    assert len(validators.time_zone_choices()) == str(form["time_zone"]).count("<option ")


@pytest.mark.django_db
def test_each_inline_lists_the_fields_django_would_find(rf, django_user_model):
    request = rf.get("/")
    request.user = django_user_model(is_superuser=True, is_staff=True, is_active=True)
    model_admin = admin.site._registry[Contact]
    for inline in model_admin.get_inline_instances(request, None):
        found = list(inline._get_form_for_get_fields(request, None).base_fields)
        assert inline.get_fields(request, None) == found, type(inline).__name__
