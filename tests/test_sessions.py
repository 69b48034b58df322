"""Nothing typed is lost when the session ends: the warning's data, "Stay signed in", the
sign-in page that says the session ended and comes back to the form, the error pages."""

import pytest
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse

from registry.models import Admission

from .factories import PatientFactory
from .test_views import admission_post, login, text

pytestmark = pytest.mark.django_db


@pytest.fixture
def form_url(site_a):
    return reverse("registry:section_edit", args=[PatientFactory(site=site_a).pk, "admission"])


def end_every_session() -> None:
    """What the server does once a session has been idle for SESSION_COOKIE_AGE."""
    Session.objects.all().delete()


def test_every_signed_in_page_says_when_the_session_ends_and_when_to_warn(client, nurse, settings):
    settings.SESSION_COOKIE_AGE = 1800
    page = text(login(client, nurse).get(reverse("registry:patient_list")))
    assert 'data-session-seconds="1800"' in page
    assert 'data-session-warning="120"' in page
    assert f'data-user="{nurse.pk}"' in page
    assert 'id="session-warning"' in page
    assert reverse("keep_alive") in page


def test_a_short_session_is_warned_half_way(client, nurse, settings):
    settings.SESSION_COOKIE_AGE = 60
    page = text(login(client, nurse).get(reverse("registry:patient_list")))
    assert 'data-session-warning="30"' in page


def test_stay_signed_in_answers_how_long_the_session_now_lasts(client, nurse, settings):
    settings.SESSION_COOKIE_AGE = 900
    response = login(client, nurse).post(reverse("keep_alive"))
    assert response.status_code == 200
    assert response.json() == {"seconds": 900}


def test_stay_signed_in_cannot_revive_an_ended_session(client, nurse):
    login(client, nurse)
    end_every_session()
    response = client.post(reverse("keep_alive"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("session_expired"))


def test_a_form_sent_after_the_session_ended_goes_to_sign_in_and_back_to_the_form(
    client, nurse, form_url
):
    login(client, nurse)
    client.get(form_url)
    end_every_session()
    response = client.post(form_url, admission_post())
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('session_expired')}?next={form_url}"
    assert not Admission.objects.exists()
    page = text(client.get(response["Location"]))
    assert 'id="session-expired"' in page
    assert f'name="next" value="{form_url}"' in page


def test_signing_in_from_the_session_ended_page_opens_the_form_again(client, nurse, form_url):
    sign_in = f"{reverse('session_expired')}?next={form_url}"
    response = client.post(
        sign_in,
        {"username": nurse.username, "password": "correct-horse-battery", "next": form_url},
    )
    assert response.status_code == 302
    assert response["Location"] == form_url


def test_a_first_visit_goes_to_the_plain_sign_in_page(client, form_url):
    response = client.get(form_url)
    assert response["Location"] == f"{reverse('login')}?next={form_url}"
    assert 'id="session-expired"' not in text(client.get(response["Location"]))


def test_a_refused_form_of_a_signed_in_nurse_says_what_to_do_in_the_sites_layout(nurse, form_url):
    client = Client(enforce_csrf_checks=True)
    client.force_login(nurse)
    response = client.post(form_url, admission_post())
    assert response.status_code == 403
    page = text(response)
    assert "Form expired" in page
    assert f'href="{form_url}">Open the form again' in page
    assert 'class="navbar' in page
    assert not Admission.objects.exists()


def test_a_refused_form_after_the_session_ended_goes_to_sign_in_and_back(nurse, form_url):
    client = Client(enforce_csrf_checks=True)
    client.force_login(nurse)
    end_every_session()
    response = client.post(form_url, admission_post())
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('session_expired')}?next={form_url}"


@pytest.mark.parametrize(
    ("url", "status", "says"),
    [
        ("/no-such-page/", 404, "Not found"),
        ("/interchange/import/", 403, "Access denied"),
    ],
)
def test_error_pages_use_the_sites_layout(client, nurse, url, status, says):
    response = login(client, nurse).get(url)
    assert response.status_code == status
    page = text(response)
    assert says in page
    assert 'class="navbar' in page
    assert "registry/registry.css" in page
