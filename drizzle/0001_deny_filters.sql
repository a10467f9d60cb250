ALTER TABLE `integrations` ADD `deny_publish_acl` text DEFAULT '[]' NOT NULL;--> statement-breakpoint
ALTER TABLE `integrations` ADD `deny_subscribe_acl` text DEFAULT '[]' NOT NULL;