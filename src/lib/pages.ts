import type { AnyElysia } from "elysia";

/** NavItem: one entry of the admin page's navigation. */
export interface NavItem {
  readonly href: string;
  readonly label: string;
}

/** PageAdmin: the signed-in admin as a page renders it; the layout draws the navigation from `nav`. */
export interface PageAdmin {
  username: string;
  csrfToken: string;
  nav: readonly NavItem[];
  /** a read-only admin: the page offers no form that changes anything and shows no secret */
  readOnly?: boolean;
}

/**
 * PageKit: what the web layer hands a part for its pages, so a part's routes never import `web/`:
 * who is asking, as a page needs it and as the log names it.
 */
export interface PageKit {
  /** adminOf: the signed-in admin of a page request (a page refuses an API token) */
  adminOf(request: Request): PageAdmin;
  /** actorOf: who made a page or API request, for the log ("admin ada", "API token ci") */
  actorOf(request: Request): string;
}

/**
 * AdminPages: a part's share of the admin page: its entry in the navigation and its routes (pages and
 * `/api/v1/...`), which the web layer mounts behind the admin guard (sign-in or API token, CSRF).
 */
export interface AdminPages {
  readonly nav?: NavItem;
  routes(kit: PageKit): AnyElysia;
}

/** IntegrationNote: what a part adds to an integration's row ("Agent (Edge Connector), online"; a warning). */
export interface IntegrationNote {
  text?: string;
  warning?: string;
}
