from flask import Blueprint, Response, render_template, request
from flask_babel import format_number, lazy_gettext as _l
from flask_login import current_user

from portal.audit import services
from portal.audit.forms import AuditFilterForm
from portal.core.access import access_rule
from portal.core.audit import tag_label
from portal.core.registry import for_function, nav

bp = Blueprint("audit", __name__, url_prefix="/admin/audit")
nav.add("audit.report", _l("Audit log"), order=75, show=for_function("audit_report"))


def _filter(form: AuditFilterForm) -> services.AuditFilter:
    return services.AuditFilter(start=form.start.data, end=form.end.data, actor_email=form.actor.data or None,
                                patient_mrn=form.mrn.data or None, action=form.action.data or None,
                                outcome=form.outcome.data or None)


def _form() -> AuditFilterForm:
    form = AuditFilterForm(request.args)
    form.action.choices = [("", _l("Any action"))] + sorted(((a, tag_label(a)) for a in services.action_choices()),
                                                            key=lambda c: c[1].lower())
    form.outcome.choices = [("", _l("Any outcome"))] + services.outcome_choices()
    return form


def _page(form, valid: bool, status: int):
    f = _filter(form) if valid else services.AuditFilter()
    rows, total, pages, page = services.report(current_user, f, services.parse_page(request.args.get("page")))
    return render_template("audit/report.html", form=form, rows=rows, total=total, page=page, pages=pages,
                           outcome_label=services.outcome_label, filtered=valid, count_cap=services.COUNT_CAP,
                           count_cap_label=format_number(services.COUNT_CAP),
                           query_args={k: v for k, v in request.args.items() if k != "page"}), status


@bp.route("")
@access_rule("staff", function="audit_report")
def report():
    form = _form()
    valid = form.validate()
    return _page(form, valid, 200 if valid else 400)


@bp.route("/export.csv")
@access_rule("staff", function="audit_report")
def export():
    form = _form()
    if not form.validate():  # never "everything" for a filter that did not parse: the page says what is wrong
        return _page(form, False, 400)
    body = services.export_csv(current_user, _filter(form))
    return Response(body, mimetype="text/csv",
                    headers={"Content-Disposition": "attachment; filename=audit-report.csv"})
