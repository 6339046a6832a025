from flask import Blueprint, redirect, render_template, session, url_for
from flask_login import current_user

from portal.accounts import services as account_services
from portal.accounts.forms import LanguageForm
from portal.accounts.routes import home_for, safe_next
from portal.core.access import access_rule
from portal.core.errors import DomainError
from portal.extensions import db
from portal.patients import services as patient_services

bp = Blueprint("main", __name__)


@bp.route("/")
@access_rule("public")
def index():
    if current_user.is_authenticated:
        return redirect(home_for(current_user))
    return render_template("main/index.html")


@bp.route("/home")
@access_rule("patient")
def dashboard():
    patient_services.own_patient(current_user)  # 404 unless the account still has its record
    return render_template("main/dashboard.html")


@bp.route("/staff")
@access_rule("signed_in")
def staff_home():
    if current_user.role == "patient":
        return redirect(url_for("main.dashboard"))
    return render_template("main/staff_home.html")


@bp.route("/help")
@access_rule("public")
def help():
    return render_template("main/help.html")


@bp.route("/language", methods=["POST"])
@access_rule("public")
def set_language():
    form = LanguageForm()
    if form.validate_on_submit():
        try:
            account_services.set_language(current_user, form.lang.data)
        except DomainError:
            pass
        else:
            session["lang"] = form.lang.data
            db.session.commit()
    return redirect(safe_next(form.next.data) or url_for("main.index"))
