"""Landing, dashboards, help and the language choice (/healthz is answered before Flask)."""
from flask import Blueprint, abort, redirect, render_template, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from portal.core.access import access_rule
from portal.core.errors import DomainError
from portal.core.i18n import remember_language
from portal.core.page_cache import anonymous_page
from portal.core.registry import (
    STAFF_HOME,
    for_anonymous,
    for_everyone,
    for_patients,
    for_signed_in,
    home_cards,
    nav,
)
from portal.core.roles import Role
from portal.core.web import home_for, safe_next, same_origin_request
from portal.extensions import csrf
from portal.main import services
from portal.main.forms import LanguageForm

bp = Blueprint("main", __name__)

nav.add("main.index", _l("Home"), order=0, show=for_anonymous)
nav.add("main.dashboard", _l("Home"), order=0, show=for_patients)
nav.add("main.staff_home", _l("Home"), order=0, show=lambda u: for_signed_in(u) and not for_patients(u))
nav.add("main.help", _l("Help"), order=900, show=for_everyone)
home_cards.add("staff_links", order=900, audience=STAFF_HOME, template="main/_card_staff_links.html",
               build=lambda user, patient: {})


@bp.route("/")
@access_rule("public")
def index():
    if current_user.is_authenticated:
        return redirect(home_for(current_user))
    return render_template("main/index.html")


@bp.route("/home")
@access_rule("patient")
def dashboard():
    return render_template("main/dashboard.html", cards=services.patient_home(current_user))


@bp.route("/staff")
@access_rule("signed_in")
def staff_home():
    if current_user.role == Role.PATIENT:
        return redirect(url_for("main.dashboard"))
    return render_template("main/staff_home.html", cards=services.staff_home(current_user))


@bp.route("/help")
@access_rule("public")
@anonymous_page
def help():
    return render_template("main/help.html")


@bp.route("/language", methods=["POST"])
@access_rule("public")
@csrf.exempt  # Origin-checked instead (below): the header's form needs no token, so pages need no session
def set_language():
    """The header's language buttons. No CSRF token (anonymous pages would otherwise have to create and sign
    a session just for this form, PERFORMANCE.md G3): a cross-site page cannot make a browser send our own
    Origin (or, without one, a same-origin Referer), so such a POST is refused with 400 and changes nothing.
    The choice goes to a cookie of its own, and on a signed-in user's account."""
    if not same_origin_request():
        abort(400)
    form = LanguageForm(meta={"csrf": False})
    if form.validate_on_submit():
        try:
            services.set_language(current_user, form.lang.data)
        except DomainError:
            pass
        else:
            remember_language(form.lang.data)
    return redirect(safe_next(form.next.data) or url_for("main.index"))
