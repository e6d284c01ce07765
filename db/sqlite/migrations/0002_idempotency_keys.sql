CREATE TABLE `idempotency_keys` (
	`apikey_id` integer NOT NULL,
	`key` text NOT NULL,
	`event_id` integer NOT NULL,
	`created` integer NOT NULL,
	PRIMARY KEY(`apikey_id`, `key`),
	FOREIGN KEY (`apikey_id`) REFERENCES `apikeys`(`id`) ON UPDATE no action ON DELETE no action,
	FOREIGN KEY (`event_id`) REFERENCES `events`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `idempotency_keys_created_idx` ON `idempotency_keys` (`created`);