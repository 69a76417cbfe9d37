"""The console's one navigation registry.

A page module registers its menu entry here (`register(NavItem(...))`); the base layout
shows each entry to the staff who may use it. Community pages live under
`/console/c/{cid}/...` and are shown when the signed-in staff member holds one of
`actions` in that community; operator pages (`operator=True`) under `/console/ops/...`
are shown to city operators only.
"""

from __future__ import annotations

from dataclasses import dataclass

from auth.permissions import POLICY, Action, Principal


@dataclass(frozen=True)
class NavItem:
    key: str  # unique, also the `active` marker pages pass to the layout
    label: str  # i18n key
    path: str  # may contain {cid}
    actions: tuple[Action, ...] = ()  # any one of them shows the entry (empty: any staff)
    operator: bool = False
    order: int = 100

    def href(self, cid: int | None) -> str:
        return self.path.format(cid=cid) if "{cid}" in self.path else self.path


_ITEMS: dict[str, NavItem] = {}


def register(item: NavItem) -> NavItem:
    if item.key in _ITEMS and _ITEMS[item.key] != item:
        raise ValueError(f"console nav item {item.key!r} registered twice")
    _ITEMS[item.key] = item
    return item


def may(principal: Principal, action: Action, cid: int | None) -> bool:
    if cid is None:
        return False
    held = principal.roles.get(cid, set())
    return bool(held & POLICY[action])


def visible(principal: Principal, cid: int | None) -> list[NavItem]:
    items = []
    for item in sorted(_ITEMS.values(), key=lambda i: (i.order, i.key)):
        if item.operator:
            if principal.is_operator:
                items.append(item)
            continue
        if cid is None or cid not in principal.roles:
            continue
        if not item.actions or any(may(principal, a, cid) for a in item.actions):
            items.append(item)
    return items
