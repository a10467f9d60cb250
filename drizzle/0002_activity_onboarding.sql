CREATE TABLE `activity` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`at` integer NOT NULL,
	`actor` text NOT NULL,
	`action` text NOT NULL,
	`subject` text DEFAULT '' NOT NULL,
	`detail` text DEFAULT '' NOT NULL
);
--> statement-breakpoint
CREATE INDEX `activity_at_idx` ON `activity` (`at`);--> statement-breakpoint
CREATE INDEX `activity_action_idx` ON `activity` (`action`);--> statement-breakpoint
CREATE TABLE `onboarding_requests` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`type` text NOT NULL,
	`username` text NOT NULL,
	`password_hash` text NOT NULL,
	`client_id` text DEFAULT '' NOT NULL,
	`remote` text DEFAULT '' NOT NULL,
	`fingerprint` text NOT NULL,
	`first_seen` integer NOT NULL,
	`last_seen` integer NOT NULL,
	`attempts` integer DEFAULT 1 NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `onboarding_requests_username_unique` ON `onboarding_requests` (`username`);--> statement-breakpoint
CREATE TABLE `onboarding_window` (
	`id` integer PRIMARY KEY NOT NULL,
	`open_until` integer NOT NULL,
	`types` text,
	`opened_by` text NOT NULL
);
