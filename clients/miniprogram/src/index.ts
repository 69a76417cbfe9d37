/**
 * Typed client for the Anxin API, for the WeChat mini-program and the console.
 *
 * Types come from docs/openapi.json (`npm run generate` writes src/schema.d.ts); calls go
 * through openapi-fetch, so a path, parameter or field the API no longer has is a compile
 * error, not a runtime surprise.
 */
import createClient, { type Client, type Middleware } from "openapi-fetch";

import type { components, operations, paths } from "./schema.js";

export type { components, operations, paths };
export type Schemas = components["schemas"];
export type ErrorBody = Schemas["ErrorBody"];

export interface AnxinOptions {
  baseUrl: string;
  /** the access token of the signed-in resident or staff member, if any */
  token?: () => string | undefined;
  /** zh (default) or en; sent as Accept-Language */
  language?: () => "zh" | "en" | undefined;
  fetch?: typeof globalThis.fetch;
}

export type AnxinClient = Client<paths>;

export function createAnxinClient(options: AnxinOptions): AnxinClient {
  const client = createClient<paths>({
    baseUrl: options.baseUrl,
    ...(options.fetch ? { fetch: options.fetch } : {}),
  });
  const auth: Middleware = {
    onRequest({ request }) {
      const token = options.token?.();
      if (token) request.headers.set("Authorization", `Bearer ${token}`);
      const lang = options.language?.();
      if (lang) request.headers.set("Accept-Language", lang === "en" ? "en" : "zh-CN");
      return request;
    },
  };
  client.use(auth);
  return client;
}

/** A fresh Idempotency-Key for one user action (send the same one again on a retry). */
export function idempotencyKey(): string {
  const webCrypto = (globalThis as { crypto?: Crypto }).crypto;
  if (webCrypto?.randomUUID) return webCrypto.randomUUID();
  // wx mini-programs and Node 18 may lack crypto.randomUUID: 128 random bits will do.
  const bytes = new Uint8Array(16);
  if (webCrypto?.getRandomValues) webCrypto.getRandomValues(bytes);
  else for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Every item of a collection, following `next` (the API's one list shape). */
export async function allItems<T>(
  page: (cursor: string | undefined) => Promise<{ items: T[]; next: string | null }>,
): Promise<T[]> {
  const out: T[] = [];
  let cursor: string | undefined;
  for (;;) {
    const { items, next } = await page(cursor);
    out.push(...items);
    if (next === null) return out;
    cursor = next;
  }
}
