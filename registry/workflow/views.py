"""Screens of the study workflow: screening log, follow-up calls and the mRS
questionnaire, data queries, record locks, consistency checks, flow chart.

Views are thin: access check -> form -> service -> redirect. Patients and
screening entries come from ``registry.access`` (another site: 404); a
forbidden action answers 403.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from registry import access, checks, services, smrs
from registry.models import DataQuery, QueryStatus, ScreeningExclusion

from . import services as workflow
from .forms import (
    ChecksFilterForm,
    ContactAttemptForm,
    EnrolForm,
    ExclusionForm,
    InterviewFinishForm,
    LockForm,
    OutOfWindowForm,
    QueryMessageForm,
    QueryRaiseForm,
    ReasonForm,
    ScreeningForm,
)

T = "registry/workflow/"


def _add_errors(form, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for name, errors in error.message_dict.items():
            form.add_error(name if name in form.fields else None, errors)
    else:
        form.add_error(None, error.messages)


# --- screening ---------------------------------------------------------------------


def screening_list(request):
    entries = workflow.screening_for(request.user)
    return render(
        request,
        T + "screening_list.html",
        {
            "entries": entries[:500],
            "counts": workflow.screening_counts(entries),
            "enrolled": access.patients_for(request.user).count(),
            "reasons": ScreeningExclusion.choices,
            "can_log": access.editable_sites_for(request.user).exists(),
        },
    )


@require_http_methods(["GET", "POST"])
def screening_create(request):
    sites = access.editable_sites_for(request.user)
    access.require(sites.exists())
    form = ScreeningForm(request.POST or None, sites=sites)
    if request.method == "POST" and form.is_valid():
        try:
            entry = workflow.screening_log(user=request.user, **form.cleaned_data)
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(request, _("Screening entry saved."))
            if entry.can_enrol:
                return redirect("registry:screening_enrol", pk=entry.pk)
            return redirect("registry:screening_list")
    return render(request, T + "screening_form.html", {"form": form})


@require_http_methods(["GET", "POST"])
def screening_enrol(request, pk):
    entry = get_object_or_404(workflow.screening_for(request.user), pk=pk)
    access.require(access.editable_sites_for(request.user).filter(pk=entry.site_id).exists())
    form = EnrolForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            patient = workflow.patient_enrol_from_screening(
                user=request.user, entry=entry, **form.cleaned_data
            )
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(request, _("Patient %(id)s enrolled.") % {"id": patient.study_id})
            return redirect("registry:patient_detail", pk=patient.pk)
    return render(request, T + "enrol_form.html", {"form": form, "entry": entry})


# --- follow-up ---------------------------------------------------------------------


def followup_worklist(request):
    items = workflow.worklist(request.user)
    buckets = [
        {"key": key, "label": workflow.BUCKET_LABELS[key], "items": items[key]}
        for key in (*workflow.BUCKETS, *workflow.OTHER_BUCKETS)
    ]
    return render(
        request,
        T + "worklist.html",
        {"buckets": buckets, "window": workflow.window_days(), "today": timezone.localdate()},
    )


@require_http_methods(["GET", "POST"])
def patient_calls(request, pk):
    """One patient's follow-up: due date, attempts, interviews, exclusion."""
    patient = access.get_patient(request.user, pk)
    user = request.user
    attempt_form = ContactAttemptForm(prefix="attempt")
    exclusion_form = ExclusionForm(prefix="exclude")
    revoke_form = ReasonForm(prefix="revoke")
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "attempt":
                attempt_form = ContactAttemptForm(request.POST, prefix="attempt")
                if attempt_form.is_valid():
                    workflow.contact_attempt_log(
                        user=user, patient=patient, **attempt_form.cleaned_data
                    )
                    messages.success(request, _("Contact attempt logged."))
                    return redirect("registry:patient_calls", pk=patient.pk)
            elif action == "exclude":
                exclusion_form = ExclusionForm(request.POST, prefix="exclude")
                if exclusion_form.is_valid():
                    workflow.patient_exclude(
                        user=user, patient=patient, **exclusion_form.cleaned_data
                    )
                    messages.success(request, _("Patient excluded; the record is kept."))
                    return redirect("registry:patient_calls", pk=patient.pk)
            elif action == "revoke":
                revoke_form = ReasonForm(request.POST, prefix="revoke")
                if revoke_form.is_valid():
                    workflow.patient_exclusion_revoke(
                        user=user, patient=patient, note=revoke_form.cleaned_data["reason"]
                    )
                    messages.success(request, _("Exclusion taken back."))
                    return redirect("registry:patient_calls", pk=patient.pk)
            else:
                raise PermissionDenied
        except ValidationError as error:
            form = {"attempt": attempt_form, "exclude": exclusion_form}.get(action, revoke_form)
            _add_errors(form, error)
    due = workflow.followup_due(patient)
    attempts = list(patient.contact_attempts.select_related("by"))
    exclusion = getattr(patient, "exclusion", None)  # reverse 1:1: None when absent
    failed = sum(1 for a in attempts if a.failed)
    today = timezone.localdate()
    return render(
        request,
        T + "patient_calls.html",
        {
            "patient": patient,
            "due": due,
            "bucket": workflow.BUCKET_LABELS[workflow.bucket_for(due, today)],
            "attempts": attempts,
            "interviews": patient.mrs_interviews.select_related("by"),
            "exclusion": exclusion,
            "propose_lost": workflow.proposes_lost(due, failed, today),
            "locked": services.is_locked(patient),
            "attempt_form": attempt_form,
            "exclusion_form": exclusion_form,
            "revoke_form": revoke_form,
            "can_edit": access.has(user, access.EDIT_CLINICAL),
            "can_exclude": access.has(user, access.EXCLUDE),
        },
    )


def _answers_from(params) -> dict[str, bool]:
    """Answers carried in the request (``a_<key>`` = yes/no), only along the asked path."""
    raw = {
        key: params.get(f"a_{key}") == "yes"
        for key in smrs.QUESTION_KEYS
        if params.get(f"a_{key}") in ("yes", "no")
    }
    return {question.key: answer for question, answer in smrs.asked_path(raw)}


def _interview_gate(request, patient, params, context):
    """Before the 3-month window opens the questionnaire starts only with a reason.

    Returns the page asking for it, or None when the interview may go on (the reason,
    once given, travels with the answers as ``oow_reason``).
    """
    due = workflow.followup_due(patient)
    today = timezone.localdate()
    if due is None or today >= due.window_start or params.get("oow_reason", "").strip():
        return None
    form = OutOfWindowForm(params if "oow_start" in params else None)
    form.is_valid()
    return render(request, T + "mrs_gate.html", {**context, "form": form, "due": due})


@require_http_methods(["GET", "POST"])
def mrs_interview(request, pk):
    """The smRSq, one question per step, no JavaScript: answers travel in the form."""
    patient = access.get_patient(request.user, pk)
    access.require(access.has(request.user, access.EDIT_CLINICAL))
    params = request.POST if request.method == "POST" else request.GET
    answers = _answers_from(params)
    current = params.get("q")
    if current in smrs.BY_KEY and params.get("answer") in ("yes", "no"):
        answers[current] = params["answer"] == "yes"
        answers = {q.key: a for q, a in smrs.asked_path(answers)}
    if params.get("back") and answers:
        answers.pop(list(answers)[-1])
    question = smrs.next_question(answers)
    oow_reason = params.get("oow_reason", "").strip()
    hidden = [(f"a_{k}", "yes" if v else "no") for k, v in answers.items()]
    context = {
        "patient": patient,
        "answers": answers,
        "hidden": hidden + ([("oow_reason", oow_reason)] if oow_reason else []),
        "path": smrs.asked_path(answers),
        "question": question,
        "step": len(answers) + 1,
        "n_questions": len(smrs.QUESTIONS),
        "locked": services.is_locked(patient),
        "wording_not_validated": translation.get_language() in smrs.NOT_VALIDATED,
    }
    gate = _interview_gate(request, patient, params, context)
    if gate is not None:
        return gate
    if question is not None:
        return render(request, T + "mrs_question.html", context)
    score = smrs.smrs_score(answers)
    form = InterviewFinishForm(
        request.POST if request.method == "POST" else None,
        due=workflow.followup_due(patient),
        initial={"out_of_window_reason": oow_reason},
    )
    if request.method == "POST" and form.is_valid():
        try:
            workflow.mrs_interview_record(
                user=request.user,
                patient=patient,
                answers=answers,
                language=translation.get_language(),
                **form.cleaned_data,
            )
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(
                request, _("3-month mRS %(score)s recorded.") % {"score": form_score(form, score)}
            )
            return redirect("registry:patient_calls", pk=patient.pk)
    context.update(form=form, score=score, dead=answers.get("dead") is True)
    return render(request, T + "mrs_finish.html", context)


def form_score(form, score: int) -> int:
    override = form.cleaned_data.get("override_score")
    return score if override is None else override


# --- data queries -------------------------------------------------------------------


def query_list(request):
    status = request.GET.get("status")
    queries = workflow.queries_for(request.user)
    if status in QueryStatus.values:
        queries = queries.filter(status=status)
    elif status != "all":
        queries = queries.exclude(status=QueryStatus.CLOSED)
    return render(
        request,
        T + "query_list.html",
        {"queries": queries[:500], "status": status or "", "statuses": QueryStatus.choices},
    )


@require_http_methods(["GET", "POST"])
def query_create(request, pk):
    patient = access.get_patient(request.user, pk)
    access.require(access.has(request.user, access.RAISE_QUERY))
    form = QueryRaiseForm(request.POST or None, initial={"field": request.GET.get("field")})
    if request.method == "POST" and form.is_valid():
        try:
            query = workflow.query_raise(user=request.user, patient=patient, **form.cleaned_data)
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(request, _("Query raised."))
            return redirect("registry:query_detail", pk=query.pk)
    return render(request, T + "query_form.html", {"form": form, "patient": patient})


QUERY_ACTIONS = {
    "answer": workflow.query_answer,
    "close": workflow.query_close,
    "reopen": workflow.query_reopen,
}


@require_http_methods(["GET", "POST"])
def query_detail(request, pk):
    query: DataQuery = get_object_or_404(workflow.queries_for(request.user), pk=pk)
    form = QueryMessageForm(request.POST or None)
    if request.method == "POST":
        service = QUERY_ACTIONS.get(request.POST.get("action"))
        if service is None:
            raise PermissionDenied
        if form.is_valid():
            try:
                service(user=request.user, query=query, text=form.cleaned_data["text"])
            except ValidationError as error:
                _add_errors(form, error)
            else:
                messages.success(request, _("Query updated."))
                return redirect("registry:query_detail", pk=query.pk)
    user = request.user
    return render(
        request,
        T + "query_detail.html",
        {
            "query": query,
            "patient": query.patient,
            "messages_list": query.messages.select_related("author"),
            "form": form,
            "can_answer": access.has(user, access.ANSWER_QUERY)
            and query.status in (QueryStatus.OPEN, QueryStatus.REOPENED),
            "can_close": access.can_close_query(user, query) and query.status != QueryStatus.CLOSED,
            "can_reopen": access.can_close_query(user, query)
            and query.status in (QueryStatus.ANSWERED, QueryStatus.CLOSED),
        },
    )


# --- locking ---------------------------------------------------------------------------


LOCK_ACTIONS = {
    "lock": (workflow.patient_lock, _("Record locked."), _("The record is already locked.")),
    "unlock": (
        workflow.patient_unlock,
        _("Record unlocked for correction."),
        _("The record is not locked."),
    ),
}


@require_http_methods(["GET", "POST"])
def patient_lock(request, pk):
    """Lock and unlock are two explicit actions (``action``), never a toggle."""
    patient = access.get_patient(request.user, pk)
    user = request.user
    form = LockForm(request.POST or None)
    if request.method == "POST":
        access.require(access.has(user, access.LOCK))
        action = LOCK_ACTIONS.get(request.POST.get("action"))
        if action is None:
            return HttpResponseBadRequest(_("Say whether to lock or to unlock."))
        service, done, already = action
        wanted_locked = service is workflow.patient_lock
        if form.is_valid():
            try:
                change = service(user=user, patient=patient, **form.cleaned_data)
            except ValidationError as error:
                _add_errors(form, error)
            else:
                (messages.success if change.changed else messages.info)(
                    request, done if change.changed else already
                )
                return redirect("registry:patient_lock", pk=patient.pk)
        elif services.is_locked(patient) == wanted_locked:
            messages.info(request, already)  # a repeated request: nothing to sign
            return redirect("registry:patient_lock", pk=patient.pk)
    lock = getattr(patient, "lock", None)
    history = lock.history.select_related("history_user") if lock is not None else []
    return render(
        request,
        T + "patient_lock.html",
        {
            "patient": patient,
            "locked": services.is_locked(patient),
            "lock": lock,
            "form": form,
            "history": history,
            "can_lock": access.has(user, access.LOCK),
        },
    )


# --- automatic checks ---------------------------------------------------


def data_checks(request):
    form = ChecksFilterForm(request.GET or None, sites=access.sites_for(request.user))
    data = form.cleaned_data if form.is_valid() else {}
    patients = access.patients_for(request.user)
    if data.get("site"):
        patients = patients.filter(site=data["site"])
    page = checks.check_page(
        patients,
        site=data.get("at") or None,
        after=data.get("after", ""),
        kind=data.get("kind", ""),
        code=data.get("code", ""),
    )
    return render(
        request,
        T + "checks.html",
        {
            "form": form,
            "page": page,
            "grouped": page.by_site(),
            "page_findings": checks.PAGE_FINDINGS,
        },
    )
