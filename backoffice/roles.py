"""Staff roles and API clients.

Two staff groups (DESIGN: support works the queues, finance watches the money)
and one group for REST clients. Permissions are listed by "app_label.codename";
`roles_ensure` creates the groups and grants exactly these, so a fresh database
and an old one end up the same.
"""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission, User
from django.db import transaction
from django.db.models import Q

from apitokens.services import api_token_issue

SUPPORT = "support"
FINANCE = "finance"
API_CLIENTS = "api_clients"
STAFF_ROLES = (SUPPORT, FINANCE)

_VIEW_EVERYTHING = (
    "inventory",
    "orders",
    "payments",
    "sagas",
    "reconciliation",
    "idempotency",
    "backoffice",
)

# Extra (non-view) permissions per role; view_* on every domain model comes for both.
ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    SUPPORT: (
        "orders.change_order",
        "orders.cancel_order",
        "sagas.change_sagarun",
        # The saga engine's manual operations (sagas.choices.MANUAL_ACTION_PERMISSIONS).
        "sagas.retry_run",
        "sagas.compensate_run",
        "sagas.skip_step",
        "sagas.resolve_run",
        "reconciliation.change_incident",
        "reconciliation.remediate_incident",
        "reconciliation.refund_incident",
        # Support asks for refunds; above the approval threshold finance must approve.
        "backoffice.request_refund",
    ),
    # Finance reads everything and is the second person for large refunds; it runs no saga action.
    FINANCE: ("backoffice.approve_refund",),
    API_CLIENTS: (),
}


def _permissions_for(role: str) -> list[Permission]:
    perms = []
    if role in STAFF_ROLES:
        perms.extend(
            Permission.objects.filter(
                content_type__app_label__in=_VIEW_EVERYTHING, codename__startswith="view_"
            )
        )
    for label in ROLE_PERMISSIONS[role]:
        app_label, codename = label.split(".", 1)
        try:
            perms.append(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        except Permission.DoesNotExist:
            # A renamed model or permission must fail loudly, not leave a role powerless.
            raise LookupError(f"permission {label} does not exist (migrate first?)") from None
    return perms


@transaction.atomic
def roles_ensure() -> dict[str, Group]:
    groups = {}
    for role in (*STAFF_ROLES, API_CLIENTS):
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.set(_permissions_for(role))
        groups[role] = group
    return groups


@transaction.atomic
def staff_create(*, username: str, role: str, password: str) -> User:
    if role not in STAFF_ROLES:
        raise ValueError(f"role must be one of {', '.join(STAFF_ROLES)}")
    groups = roles_ensure()
    if User.objects.filter(username=username).exists():
        raise ValueError(f"user {username!r} already exists")
    user = User.objects.create_user(username=username, password=password, is_staff=True)
    user.groups.add(groups[role])
    return user


def api_client_get(*, name: str) -> User:
    """The API client (a non-staff member of the api_clients group) called `name`."""
    try:
        return User.objects.get(username=name, is_staff=False, groups__name=API_CLIENTS)
    except User.DoesNotExist:
        raise ValueError(f"no API client named {name!r}") from None


@transaction.atomic
def api_client_create(*, name: str) -> str:
    """Create an API client (a user without staff rights) and return its token."""
    groups = roles_ensure()
    if User.objects.filter(username=name).exists():
        raise ValueError(f"an account named {name!r} already exists")
    user = User.objects.create_user(username=name, password=None, is_staff=False)
    user.groups.add(groups[API_CLIENTS])
    return api_token_issue(user=user)


def support_people() -> list[tuple[int, str]]:
    """(id, username) of everyone incidents may be assigned to: active staff with the
    support role, and active superusers. One query, by username."""
    people = (
        User.objects.filter(is_active=True)
        .filter(Q(is_superuser=True) | Q(is_staff=True, groups__name=SUPPORT))
        .distinct()
        .order_by("username")
    )
    return list(people.values_list("id", "username"))


def support_person_get(user_id: int) -> User | None:
    """The support person with this id, or None (unknown, inactive, not support)."""
    return (
        User.objects.filter(pk=user_id, is_active=True)
        .filter(Q(is_superuser=True) | Q(is_staff=True, groups__name=SUPPORT))
        .first()
    )
