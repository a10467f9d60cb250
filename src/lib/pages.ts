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

/** HelpContext: what a part needs to write its connection help for one integration. */
export interface HelpContext {
  /** the host name the admin reached the appliance by (devices on the same network likely reach it so too) */
  host: string;
  /** the admin page's origin, `scheme://host:port` */
  baseUrl: string;
  /** the username to put into the examples */
  username: string;
  /** the port a started listener or the web server has, by name ("mqtt", "http", "https", ...) */
  port(name: string): number | undefined;
}

/**
 * ConnectHelp: how a device of a part's type connects: what its username means, where it connects to,
 * and ready examples (`PASSWORD` where the password goes). Shown by the Add form and an integration's
 * detail; plain text, escaped where shown.
 */
export interface ConnectHelp {
  username: string;
  urls: { label: string; url: string }[];
  examples: { label: string; text: string }[];
  /**
   * retry: what a device of this type must do to come in after its onboarding request is approved (it
   * gets in on its own next attempt); the onboarding panel lists every part's
   */
  retry?: string;
}
