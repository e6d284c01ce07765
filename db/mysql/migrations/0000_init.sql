CREATE TABLE `access_ended` (
	`id` int AUTO_INCREMENT NOT NULL,
	`client_id` int,
	`apikey_id` int,
	`created` bigint NOT NULL,
	CONSTRAINT `access_ended_id` PRIMARY KEY(`id`)
);
--> statement-breakpoint
CREATE TABLE `apikeys` (
	`id` int AUTO_INCREMENT NOT NULL,
	`key_hash` varbinary(64) NOT NULL,
	`permission` varchar(5) NOT NULL,
	`created` bigint NOT NULL,
	`revoked` bigint,
	CONSTRAINT `apikeys_id` PRIMARY KEY(`id`),
	CONSTRAINT `apikeys_key_hash_unique` UNIQUE(`key_hash`)
);
--> statement-breakpoint
CREATE TABLE `clients` (
	`id` int AUTO_INCREMENT NOT NULL,
	`device` varbinary(960),
	`location` varbinary(960),
	`session_hash` varbinary(64) NOT NULL,
	`apikey_id` int NOT NULL,
	`created` bigint NOT NULL,
	`last_active` bigint NOT NULL,
	`ended` bigint,
	CONSTRAINT `clients_id` PRIMARY KEY(`id`),
	CONSTRAINT `clients_session_hash_unique` UNIQUE(`session_hash`)
);
--> statement-breakpoint
CREATE TABLE `events` (
	`id` int AUTO_INCREMENT NOT NULL,
	`client_id` int NOT NULL,
	`device` varbinary(960),
	`name` varbinary(960) NOT NULL,
	`location` varbinary(960),
	`action` varbinary(960),
	`value` blob,
	`time` bigint NOT NULL,
	CONSTRAINT `events_id` PRIMARY KEY(`id`)
);
--> statement-breakpoint
CREATE TABLE `idempotency_keys` (
	`apikey_id` int NOT NULL,
	`key` varbinary(1020) NOT NULL,
	`event_id` int NOT NULL,
	`created` bigint NOT NULL,
	CONSTRAINT `idempotency_keys_apikey_id_key_pk` PRIMARY KEY(`apikey_id`,`key`)
);
--> statement-breakpoint
CREATE TABLE `cred_locks` (
	`name` varchar(32) NOT NULL,
	CONSTRAINT `cred_locks_name` PRIMARY KEY(`name`)
);
--> statement-breakpoint
CREATE TABLE `subscriptions` (
	`id` int AUTO_INCREMENT NOT NULL,
	`client_id` int NOT NULL,
	`event_name` varbinary(960) NOT NULL,
	`location` varbinary(960),
	CONSTRAINT `subscriptions_id` PRIMARY KEY(`id`),
	CONSTRAINT `subscriptions_client_event_idx` UNIQUE(`client_id`,`event_name`)
);
--> statement-breakpoint
ALTER TABLE `clients` ADD CONSTRAINT `clients_apikey_id_apikeys_id_fk` FOREIGN KEY (`apikey_id`) REFERENCES `apikeys`(`id`) ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE `events` ADD CONSTRAINT `events_client_id_clients_id_fk` FOREIGN KEY (`client_id`) REFERENCES `clients`(`id`) ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE `idempotency_keys` ADD CONSTRAINT `idempotency_keys_apikey_id_apikeys_id_fk` FOREIGN KEY (`apikey_id`) REFERENCES `apikeys`(`id`) ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE `idempotency_keys` ADD CONSTRAINT `idempotency_keys_event_id_events_id_fk` FOREIGN KEY (`event_id`) REFERENCES `events`(`id`) ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE `subscriptions` ADD CONSTRAINT `subscriptions_client_id_clients_id_fk` FOREIGN KEY (`client_id`) REFERENCES `clients`(`id`) ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX `clients_last_active_idx` ON `clients` (`last_active`);--> statement-breakpoint
CREATE INDEX `events_name_id_idx` ON `events` (`name`,`id`);--> statement-breakpoint
CREATE INDEX `events_client_id_idx` ON `events` (`client_id`,`id`);--> statement-breakpoint
CREATE INDEX `idempotency_keys_created_idx` ON `idempotency_keys` (`created`);