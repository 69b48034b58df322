"""The simplified modified Rankin Scale questionnaire (smRSq) as a decision tree.

Bruno A, Shah N, Lin C, et al. Improving modified Rankin Scale assessment with a
simplified questionnaire. Stroke 2010;41:1048-1050. The questionnaire asks its
decision questions from the most to the least severe grade; the first "yes" gives
the score, "no" to every question gives 0. Death (mRS 6) is asked first so that a
telephone call to a relative ends there. The wording below paraphrases the
published questions for the nurse reading them over the telephone.

Pure Python: no Django models, so the same tree scores the web questionnaire,
the model's ``clean()`` and the tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from django.utils.translation import gettext_lazy as _

# The wording of the questions below, in every language of the catalogue; a new version
# whenever a question or hint changes in any language. Each interview stores the version
# and the language it was asked in.
VERSION = "1"
# Languages whose wording is a translation not yet validated against the published
# questionnaire (docs/glossary-vi.md): the questionnaire says so while it is asked.
NOT_VALIDATED = frozenset({"vi"})


@dataclass(frozen=True)
class Question:
    key: str
    text: str
    hint: str
    score_if_yes: int


# Asked in this order; "yes" stops with ``score_if_yes``.
QUESTIONS: tuple[Question, ...] = (
    Question(
        "dead",
        _("Has the patient died since the stroke?"),
        _("If yes, ask for the date of death."),
        6,
    ),
    Question(
        "constant_care",
        _("Is the patient bedridden or in need of constant care day and night?"),
        _("Someone must be available at nearly all times; often incontinent."),
        5,
    ),
    Question(
        "needs_help_bodily",
        _(
            "Does the patient need another person's help to walk or to attend to bodily "
            "needs (toilet, washing, eating)?"
        ),
        _("A cane or walker used without another person's help does not count as help."),
        4,
    ),
    Question(
        "needs_help_affairs",
        _(
            "Does the patient need help to look after own affairs (a simple meal, "
            "household chores, money, shopping, local travel)?"
        ),
        _("Could the patient live alone for a week if they had to? If not, answer yes."),
        3,
    ),
    Question(
        "limited_activities",
        _(
            "Is the patient unable to do all of the usual activities done before the "
            "stroke (work, caring for others, hobbies, social life)?"
        ),
        _("Usual = done at least monthly before the stroke."),
        2,
    ),
    Question(
        "symptoms",
        _("Does the patient have any symptoms left from the stroke?"),
        _("Weakness, numbness, speech, vision, swallowing, mood or memory changes."),
        1,
    ),
)

QUESTION_KEYS: tuple[str, ...] = tuple(q.key for q in QUESTIONS)
BY_KEY: dict[str, Question] = {q.key: q for q in QUESTIONS}


def next_question(answers: Mapping[str, bool | None]) -> Question | None:
    """The next question to ask, or None when ``answers`` already give a score."""
    for question in QUESTIONS:
        answer = answers.get(question.key)
        if answer is None:
            return question
        if answer:
            return None
    return None


def smrs_score(answers: Mapping[str, bool | None]) -> int | None:
    """The mRS 0-6 given by the answers, or None while a needed answer is missing.

    Answers after the first "yes" are ignored (the tree never asks them).
    """
    for question in QUESTIONS:
        answer = answers.get(question.key)
        if answer is None:
            return None
        if answer:
            return question.score_if_yes
    return 0


def asked_path(answers: Mapping[str, bool | None]) -> list[tuple[Question, bool]]:
    """The questions actually asked with their answers, in order."""
    path = []
    for question in QUESTIONS:
        answer = answers.get(question.key)
        if answer is None:
            break
        path.append((question, bool(answer)))
        if answer:
            break
    return path


def answers_for_score(score: int) -> dict[str, bool | None]:
    """The unique answers leading to ``score`` (tests and demo data)."""
    answers: dict[str, bool | None] = {}
    for question in QUESTIONS:
        if question.score_if_yes == score:
            answers[question.key] = True
            break
        answers[question.key] = False
    return answers
