"""Device credentials in a production Mosquitto, kept by the server at run time.

Mosquitto's dynamic-security plugin (Debian's mosquitto 2.0:
/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so) holds clients, roles and ACLs and
takes changes as JSON commands on `$CONTROL/dynamic-security/v1`, applied at once without
a restart or a password file. The server's own account (MQTT_URL's user, created with
`mosquitto_ctrl dynsec init`, role `admin`) sends them:

- provisioning: a role `anxin-dev-<id>` with exactly the device's topics and a client
  `<id>` (password = the device secret, client id bound to `dev-<id>`) holding it;
- rotation: `setClientPassword` (Mosquitto then drops the device's live session);
- disabling / enabling: `disableClient` / `enableClient` (disabling drops the session);
- revocation: `deleteClient` and `deleteRole`.

`DynsecAdmin.reconcile` brings a fresh or restored broker in line with the database at
bridge start; every change through the API is sent before the API answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from device_bridge.mqtt import MqttConnection
from device_bridge.transport import NotConnected

from .broker import SERVER_USER, device_client_id
from .protocol import new_id

log = logging.getLogger(__name__)

CONTROL = "$CONTROL/dynamic-security/v1"
RESPONSE = f"{CONTROL}/response"
SERVER_ROLE = "anxin-server"
BATCH = 50  # commands per control message
EXISTS = ("already exists",)
MISSING = ("not found",)


class DynsecError(RuntimeError):
    pass


def device_role(device_id: str) -> str:
    return f"anxin-dev-{device_id}"


def device_acls(root: str, device_id: str) -> list[dict[str, Any]]:
    """The device's own topics only (the same rules as broker.BrokerAccess)."""
    own = f"{root}/v1/dev/{device_id}"
    acls = [
        {"acltype": "publishClientSend", "topic": f"{own}/{ch}", "allow": True}
        for ch in ("ack", "evt", "state")
    ]
    acls += [
        {"acltype": "subscribeLiteral", "topic": f"{own}/cmd", "allow": True},
        {"acltype": "publishClientReceive", "topic": f"{own}/cmd", "allow": True},
    ]
    return acls


def server_acls(root: str) -> list[dict[str, Any]]:
    base = f"{root}/v1/dev/#"
    return [
        {"acltype": "publishClientSend", "topic": base, "allow": True},
        {"acltype": "publishClientReceive", "topic": base, "allow": True},
        {"acltype": "subscribePattern", "topic": base, "allow": True},
        {"acltype": "subscribePattern", "topic": f"$share/+/{base}", "allow": True},
    ]


class DynsecAdmin:
    """Sends dynamic-security commands over the server's own MQTT login."""

    def __init__(self, url: str, root: str, *, timeout: float = 10.0) -> None:
        self.root = root
        self.timeout = timeout
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.conn = MqttConnection(
            url,
            self._on_message,
            subscriptions=[RESPONSE],
            client_id=f"anxin-dynsec-{new_id()[:12]}",
        )

    @property
    def server_user(self) -> str:
        return self.conn.params.username or SERVER_USER

    async def start(self) -> None:
        await self.conn.start()
        await self.ensure_server_role()

    async def stop(self) -> None:
        await self.conn.stop()
        for fut in self._waiting.values():
            fut.cancel()
        self._waiting.clear()

    async def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        if topic != RESPONSE:
            return
        with contextlib.suppress(ValueError):
            for r in json.loads(payload).get("responses", []):
                fut = self._waiting.pop(str(r.get("correlationData", "")), None)
                if fut is not None and not fut.done():
                    fut.set_result(r)

    async def run(
        self, commands: list[dict[str, Any]], *, ok: tuple[str, ...] = ()
    ) -> list[dict[str, Any]]:
        """Send commands in order; their responses. DynsecError for an error not in `ok`."""
        out: list[dict[str, Any]] = []
        for i in range(0, len(commands), BATCH):
            batch = [{**c, "correlationData": new_id()} for c in commands[i : i + BATCH]]
            loop = asyncio.get_running_loop()
            futures = {c["correlationData"]: loop.create_future() for c in batch}
            self._waiting.update(futures)
            try:
                await self.conn.publish(CONTROL, json.dumps({"commands": batch}).encode())
                results = await asyncio.wait_for(asyncio.gather(*futures.values()), self.timeout)
            finally:
                for key in futures:
                    self._waiting.pop(key, None)
            for cmd, res in zip(batch, results, strict=True):
                err = str(res.get("error") or "")
                if err and not any(word in err.lower() for word in ok):
                    raise DynsecError(f"{cmd['command']}: {err}")
            out += results
        return out

    async def client_roles(self, username: str) -> set[str]:
        (res,) = await self.run([{"command": "getClient", "username": username}])
        client = (res.get("data") or {}).get("client") or {}
        return {str(r.get("rolename")) for r in client.get("roles", [])}

    async def ensure_server_role(self) -> None:
        """The server's account may use every device topic under its root."""
        await self.run(
            [{"command": "createRole", "rolename": SERVER_ROLE, "acls": server_acls(self.root)}],
            ok=EXISTS,
        )
        if SERVER_ROLE in await self.client_roles(self.server_user):
            return
        # Mosquitto drops every session of a client whose roles change, this one included:
        # the answer may never come; the connection comes back by itself.
        with contextlib.suppress(NotConnected, TimeoutError, DynsecError):
            await self.run(
                [
                    {
                        "command": "addClientRole",
                        "username": self.server_user,
                        "rolename": SERVER_ROLE,
                    }
                ],
                ok=EXISTS,
            )
        deadline = asyncio.get_running_loop().time() + self.timeout
        while True:
            try:
                await self.conn.wait_connected(self.timeout)
                if SERVER_ROLE in await self.client_roles(self.server_user):
                    return
            except (NotConnected, TimeoutError):
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise DynsecError(f"could not give {self.server_user} the role {SERVER_ROLE}")
            await asyncio.sleep(0.1)

    async def put_device(self, device_id: str, secret: str, *, enabled: bool) -> None:
        """Provision or update a device: its role, its login, its password, enabled or not."""
        role = device_role(device_id)
        await self.run(
            [
                {
                    "command": "createRole",
                    "rolename": role,
                    "acls": device_acls(self.root, device_id),
                },
                {
                    "command": "createClient",
                    "username": device_id,
                    "password": secret,
                    "clientid": device_client_id(device_id),
                    "roles": [{"rolename": role}],
                },
            ],
            ok=EXISTS,
        )
        await self.run(
            [
                {"command": "setClientPassword", "username": device_id, "password": secret},
                {"command": "enableClient" if enabled else "disableClient", "username": device_id},
            ]
        )

    async def remove_device(self, device_id: str) -> None:
        await self.run(
            [
                {"command": "deleteClient", "username": device_id},
                {"command": "deleteRole", "rolename": device_role(device_id)},
            ],
            ok=MISSING,
        )

    async def list_clients(self) -> list[str]:
        loop = asyncio.get_running_loop()
        corr = new_id()
        fut = self._waiting[corr] = loop.create_future()
        cmd = {"command": "listClients", "verbose": False, "count": -1, "correlationData": corr}
        try:
            await self.conn.publish(CONTROL, json.dumps({"commands": [cmd]}).encode())
            res = await asyncio.wait_for(fut, self.timeout)
        finally:
            self._waiting.pop(corr, None)
        return [str(c) for c in (res.get("data") or {}).get("clients", [])]
