from flask import Blueprint, render_template
from flask_login import current_user

from portal.core.access import access_rule
from portal.extensions import db
from portal.records import services

bp = Blueprint("records", __name__, url_prefix="/record")


@bp.route("")
@access_rule("patient")
def summary():
    patient = services.view_demographics(current_user)
    db.session.commit()
    return render_template("records/summary.html", patient=patient)
