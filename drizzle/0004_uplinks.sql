CREATE TABLE `uplinks` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`name` text NOT NULL,
	`enabled` integer DEFAULT true NOT NULL,
	`urls` text NOT NULL,
	`username` text,
	`password` text,
	`ca` text,
	`client_cert` text,
	`client_key` text,
	`client_id` text NOT NULL,
	`protocol` integer DEFAULT 4 NOT NULL,
	`forward` text DEFAULT '[]' NOT NULL,
	`remote_prefix` text DEFAULT '' NOT NULL,
	`subscribe` text DEFAULT '[]' NOT NULL,
	`local_prefix` text DEFAULT '' NOT NULL,
	`qos` integer DEFAULT 1 NOT NULL,
	`inflight` integer DEFAULT 100 NOT NULL,
	`inventory` integer DEFAULT false NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `uplinks_name_unique` ON `uplinks` (`name`);