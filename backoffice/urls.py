from django.contrib.auth import views as auth_views
from django.urls import path

from . import auth_views as staff_auth
from . import bulk_views, finance_views, views

app_name = "backoffice"

urlpatterns = [
    path("login/", staff_auth.StaffLoginView.as_view(), name="login"),
    path("login/verify/", staff_auth.login_verify, name="login-verify"),
    path("logout/", auth_views.LogoutView.as_view(next_page="backoffice:login"), name="logout"),
    path("", views.overview, name="overview"),
    path("waiting/", views.waiting, name="waiting"),
    path("sagas/", views.saga_list, name="sagas"),
    path("sagas/bulk/", views.saga_bulk, name="saga-bulk"),
    path("orders/<int:order_id>/", views.order_case, name="order"),
    path("orders/<int:order_id>/action/", views.order_action, name="order-action"),
    path("incidents/", views.incident_list, name="incidents"),
    path("incidents/<int:incident_id>/", views.incident_detail, name="incident"),
    path("incidents/<int:incident_id>/action/", views.incident_action, name="incident-action"),
    path("approvals/", views.approval_list, name="approvals"),
    path("approvals/<int:approval_id>/decide/", views.approval_decide, name="approval-decide"),
    path("search/", views.search, name="search"),
    path("bulk/", bulk_views.bulk_jobs, name="bulk-jobs"),
    path("bulk/preview/", bulk_views.bulk_preview, name="bulk-preview"),
    path("bulk/start/", bulk_views.bulk_start, name="bulk-start"),
    path("bulk/<int:job_id>/", bulk_views.bulk_job, name="bulk-job"),
    path("bulk/<int:job_id>/stop/", bulk_views.bulk_stop, name="bulk-stop"),
    path("finance/", finance_views.finance_page, name="finance"),
    path("finance/finance.csv", finance_views.finance_csv, name="finance-csv"),
    path("finance/incidents.csv", finance_views.finance_incidents_csv, name="finance-incidents-csv"),
    path("finance/remediations.csv", finance_views.finance_remediations_csv, name="finance-remediations-csv"),
    path("finance/trends/", finance_views.finance_trends, name="finance-trends"),
    path("finance/ledger/", finance_views.finance_ledger, name="finance-ledger"),
    path("states/", views.state_map, name="states"),
]
