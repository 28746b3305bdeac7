from django.contrib.auth import views as auth_views
from django.urls import path

from . import auth_views as staff_auth
from . import bulk_views, views

app_name = "backoffice"

urlpatterns = [
    path("login/", staff_auth.StaffLoginView.as_view(), name="login"),
    path("login/verify/", staff_auth.login_verify, name="login-verify"),
    path("logout/", auth_views.LogoutView.as_view(next_page="backoffice:login"), name="logout"),
    path("", views.overview, name="overview"),
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
    path("finance/", views.finance, name="finance"),
    path("finance/incidents.csv", views.finance_csv, name="finance-csv"),
    path("states/", views.state_map, name="states"),
]
