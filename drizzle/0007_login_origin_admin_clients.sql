ALTER TABLE `admin_sessions` ADD `user_agent` text DEFAULT '' NOT NULL;--> statement-breakpoint
ALTER TABLE `admin_sessions` ADD `remote` text DEFAULT '' NOT NULL;--> statement-breakpoint
ALTER TABLE `integrations` ADD `last_login_client_id` text;--> statement-breakpoint
ALTER TABLE `integrations` ADD `last_login_remote` text;