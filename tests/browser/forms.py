"""How the journeys fill the case-report forms: by the labels a nurse reads, like a nurse."""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page


def label_pattern(label: str) -> re.Pattern:
    """A field's label, with or without the required-field asterisk."""
    # Playwright writes the pattern into a /.../ selector: a slash must be escaped too.
    escaped = re.escape(label).replace("/", r"\/")
    # Case aside: "mRS at discharge" and "MRS at discharge" are the same label to a nurse.
    return re.compile(rf"^\s*{escaped}\s*\*?\s*$", re.IGNORECASE)


def field(page: Page, label: str) -> Locator:
    """The input, select or text area labelled ``label``."""
    return page.get_by_label(label_pattern(label))


def flag_group(page: Page, label: str) -> Locator:
    """The fieldset of a yes / no / not recorded question."""
    return page.get_by_role("group", name=label_pattern(label))


def choose(page: Page, label: str, answer: str) -> None:
    """Tick an answer of a yes / no / not recorded question."""
    flag_group(page, label).get_by_label(answer, exact=True).check()


def fill(page: Page, values: dict[str, str]) -> None:
    """Type, pick or tick each value, whatever the kind of field behind the label.

    A select is chosen by the words of the option, or by its code when no option reads so
    (an mRS grade typed as its number); a flag by "Yes", "No" or "Not recorded"; anything
    else (text, number, date, date-time) is typed.
    """
    for label, value in values.items():
        group = flag_group(page, label)
        if group.count():
            group.get_by_label(value, exact=True).check()
            continue
        control = field(page, label)
        if control.evaluate("element => element.tagName") == "SELECT":
            words = [text.strip() for text in control.locator("option").all_inner_texts()]
            if value in words:
                control.select_option(label=value)
            else:
                control.select_option(value=value)
        else:
            control.fill(value)


def message_next_to(page: Page, label: str) -> Locator:
    """The validation message shown in the same form group as the field ``label``."""
    control = field(page, label)
    return page.locator(".mb-3, .form-group").filter(has=control).locator(".invalid-feedback")
