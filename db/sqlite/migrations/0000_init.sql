CREATE TABLE `apikeys` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`key_hash` text NOT NULL,
	`permission` text NOT NULL,
	`created` integer NOT NULL,
	`revoked` integer
);
--> statement-breakpoint
CREATE UNIQUE INDEX `apikeys_key_hash_unique` ON `apikeys` (`key_hash`);--> statement-breakpoint
CREATE TABLE `clients` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`device` text,
	`location` text,
	`session_hash` text NOT NULL,
	`apikey_id` integer NOT NULL,
	`created` integer NOT NULL,
	`last_active` integer NOT NULL,
	FOREIGN KEY (`apikey_id`) REFERENCES `apikeys`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE UNIQUE INDEX `clients_session_hash_unique` ON `clients` (`session_hash`);--> statement-breakpoint
CREATE INDEX `clients_last_active_idx` ON `clients` (`last_active`);--> statement-breakpoint
CREATE TABLE `events` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`client_id` integer NOT NULL,
	`device` text,
	`name` text NOT NULL,
	`location` text,
	`action` text,
	`value` text,
	`time` integer NOT NULL,
	FOREIGN KEY (`client_id`) REFERENCES `clients`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `events_name_id_idx` ON `events` (`name`,`id`);--> statement-breakpoint
CREATE INDEX `events_client_id_idx` ON `events` (`client_id`,`id`);--> statement-breakpoint
CREATE TABLE `subscriptions` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`client_id` integer NOT NULL,
	`event_name` text NOT NULL,
	`location` text,
	FOREIGN KEY (`client_id`) REFERENCES `clients`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `subscriptions_client_event_idx` ON `subscriptions` (`client_id`,`event_name`);