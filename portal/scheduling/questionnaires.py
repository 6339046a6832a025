"""Pre-visit questionnaires, one per visit type (the admin picks which on the visit type).

Questions are defined here, in code, so every label is translated like any other string and every
answer is validated by type. A questionnaire is built into a WTForms form (forms.questionnaire_form);
answers are stored as JSON on the check-in, keyed by the question's key.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import lazy_gettext as _l


@dataclass(frozen=True)
class Question:
    key: str
    label: object
    kind: str  # text | long_text | yes_no | choice | scale
    required: bool = True
    choices: tuple = ()  # ((value, label), …) for choice
    max_length: int = 500
    hint: object = None


YES_NO = (("yes", _l("Yes")), ("no", _l("No")))
SCALE = tuple((str(n), str(n)) for n in range(0, 11))

QUESTIONNAIRES: dict[str, dict] = {
    "general": {
        "title": _l("Before your visit"),
        "questions": (
            Question("main_concern", _l("What would you like to talk about at this visit?"), "long_text"),
            Question("since_when", _l("How long has this been going on?"), "choice", required=False, choices=(
                ("days", _l("A few days")), ("weeks", _l("A few weeks")), ("months", _l("Months or longer")),
                ("na", _l("Not a new problem"))),),
            Question("pain", _l("Pain today, from 0 (none) to 10 (worst)"), "scale"),
            Question("interpreter", _l("Would you like an interpreter?"), "yes_no"),
        ),
    },
    "annual": {
        "title": _l("Annual check-up questions"),
        "questions": (
            Question("changes", _l("Any changes in your health since your last check-up?"), "long_text",
                     required=False),
            Question("smoking", _l("Do you smoke or vape?"), "choice", choices=(
                ("never", _l("Never")), ("former", _l("I used to")), ("current", _l("Yes, now")))),
            Question("exercise", _l("On how many days a week are you active for 30 minutes or more?"), "choice",
                     choices=tuple((str(n), str(n)) for n in range(0, 8))),
            Question("down", _l("Over the last 2 weeks, have you often felt down or hopeless?"), "yes_no"),
            Question("screenings", _l("Screenings or vaccines you would like to ask about"), "text", required=False,
                     max_length=200),
        ),
    },
    "follow_up": {
        "title": _l("Follow-up questions"),
        "questions": (
            Question("better", _l("Since your last visit, are you feeling…"), "choice", choices=(
                ("better", _l("Better")), ("same", _l("About the same")), ("worse", _l("Worse")))),
            Question("taking", _l("Are you taking the medicines as planned?"), "yes_no"),
            Question("questions", _l("Questions for your clinician"), "long_text", required=False),
        ),
    },
    "video": {
        "title": _l("Before your video visit"),
        "questions": (
            Question("main_concern", _l("What would you like to talk about at this visit?"), "long_text"),
            Question("callback_phone", _l("A phone number we can call if the video drops"), "text", max_length=32,
                     hint=_l("Digits, spaces, +, - and brackets.")),
            Question("private_place", _l("Will you be somewhere private for the visit?"), "yes_no"),
        ),
    },
}
CHOICES = [(key, q["title"]) for key, q in QUESTIONNAIRES.items()]


def questionnaire_for(key: str | None) -> dict:
    return QUESTIONNAIRES.get(key or "general", QUESTIONNAIRES["general"])


def answer_label(question: Question, value) -> str:
    """An answer as staff read it (the choice's label, not its code)."""
    if value in (None, ""):
        return ""
    if question.kind == "yes_no":
        return str(dict(YES_NO).get(value, value))
    if question.kind == "choice":
        return str(dict(question.choices).get(value, value))
    return str(value)
