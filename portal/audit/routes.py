from flask import Blueprint, Response, render_template, request
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from portal.audit import services
from portal.audit.forms import AuditFilterForm
from portal.core.access import access_rule
from portal.extensions import db

bp = Blueprint("audit", __name__, url_prefix="/admin/audit")


def _filter(form: AuditFilterForm) -> services.AuditFilter:
    return services.AuditFilter(start=form.start.data, end=form.end.data, actor_email=form.actor.data or None,
                                patient_mrn=form.mrn.data or None, action=form.action.data or None)


def _form() -> AuditFilterForm:
    form = AuditFilterForm(request.args)
    form.action.choices = [("", _l("Any action"))] + [(a, a) for a in services.action_choices()]
    return form


@bp.route("")
@access_rule("staff", function="audit_report")
def report():
    form = _form()
    valid = form.validate()
    f = _filter(form) if valid else services.AuditFilter()
    page = request.args.get("page", 1, type=int) or 1
    rows, total, pages = services.report(current_user, f, page)
    db.session.commit()
    return render_template("audit/report.html", form=form, rows=rows, total=total, page=page, pages=pages,
                           query_args={k: v for k, v in request.args.items() if k != "page"}), (200 if valid else 400)


@bp.route("/export.csv")
@access_rule("staff", function="audit_report")
def export():
    form = _form()
    f = _filter(form) if form.validate() else services.AuditFilter()
    body = services.export_csv(current_user, f)
    db.session.commit()
    return Response(body, mimetype="text/csv",
                    headers={"Content-Disposition": "attachment; filename=audit-report.csv"})
