/**
 * The resident's first minutes, through the generated client against a running server:
 * WeChat login -> find the room -> ask to join -> (staff approve) -> open the door,
 * retried with the same Idempotency-Key (one opening). Run by tests/test_ts_client.py.
 *
 * Environment: ANXIN_URL, WECHAT_URL, STAFF_USERNAME, STAFF_PASSWORD, COMMUNITY_ID,
 * BUILDING, UNIT, ROOM.
 */
import { allItems, createAnxinClient, type ErrorBody, idempotencyKey } from "../src/index.js";

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

function fail(step: string, error: ErrorBody | undefined, status: number): never {
  throw new Error(`${step}: HTTP ${status} ${error ? error.error.code : ""}`);
}

async function main(): Promise<void> {
  const baseUrl = env("ANXIN_URL");
  let residentToken: string | undefined;
  let staffToken: string | undefined;
  const resident = createAnxinClient({ baseUrl, token: () => residentToken, language: () => "en" });
  const staff = createAnxinClient({ baseUrl, token: () => staffToken });

  // wx.login() on the (fake) WeChat server, then the mini-program's login call.
  const wx = await fetch(`${env("WECHAT_URL")}/__mock__/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: "{}",
  });
  const { code } = (await wx.json()) as { code: string };
  const login = await resident.POST("/api/v1/auth/wechat/login", { body: { js_code: code } });
  if (!login.data) fail("login", login.error, login.response.status);
  residentToken = login.data.access_token;

  const communityId = Number(env("COMMUNITY_ID"));
  const communities = await allItems(async (cursor) => {
    const r = await resident.GET("/api/v1/communities", { params: { query: { cursor, limit: 50 } } });
    if (!r.data) fail("communities", r.error, r.response.status);
    return r.data;
  });
  if (!communities.some((c) => c.id === communityId)) throw new Error("community not listed");

  const rooms = await resident.GET("/api/v1/communities/{community_id}/rooms", {
    params: {
      path: { community_id: communityId },
      query: { building: env("BUILDING"), unit: env("UNIT") },
    },
  });
  if (!rooms.data) fail("rooms", rooms.error, rooms.response.status);
  const room = rooms.data.items.find((r) => r.number === env("ROOM"));
  if (!room) throw new Error("room not found");

  const joined = await resident.POST("/api/v1/memberships", {
    body: { room_id: room.id, role: "owner", note: "walk" },
  });
  if (!joined.data) fail("join", joined.error, joined.response.status);
  const membership = joined.data;

  const staffLogin = await staff.POST("/api/v1/auth/staff/login", {
    body: { username: env("STAFF_USERNAME"), password: env("STAFF_PASSWORD") },
  });
  if (!staffLogin.data) fail("staff login", staffLogin.error, staffLogin.response.status);
  staffToken = staffLogin.data.access_token;
  const approved = await staff.POST("/api/v1/staff/memberships/{membership_id}/approve", {
    params: { path: { membership_id: membership.id } },
    body: { reason: "" },
  });
  if (!approved.data) fail("approve", approved.error, approved.response.status);

  const doors = await resident.GET("/api/v1/doors", { params: { query: {} } });
  if (!doors.data) fail("doors", doors.error, doors.response.status);
  const door = doors.data.items[0];
  if (!door) throw new Error("no door to open");

  const key = idempotencyKey();
  const open = () =>
    resident.POST("/api/v1/doors/{device_id}/open", {
      params: { path: { device_id: door.id }, header: { "Idempotency-Key": key } },
    });
  const first = await open();
  if (!first.data) fail("open", first.error, first.response.status);
  const retry = await open(); // the phone timed out and tries again
  if (!retry.data) fail("open again", retry.error, retry.response.status);

  // An error body is typed too: a door that is not ours is 404 with a code and messages.
  const missing = await resident.POST("/api/v1/doors/{device_id}/open", {
    params: { path: { device_id: 2147483000 } },
  });
  const notFound = missing.error?.error;

  console.log(
    JSON.stringify({
      membership_id: membership.id,
      state_before: membership.state,
      state_after: approved.data.state,
      door_id: door.id,
      opened: first.data.opened,
      event_id: first.data.event_id,
      retry_event_id: retry.data.event_id,
      replayed: retry.response.headers.get("Idempotent-Replayed"),
      missing_status: missing.response.status,
      missing_code: notFound?.code,
      missing_message: notFound?.message,
    }),
  );
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
