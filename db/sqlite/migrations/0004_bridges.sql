CREATE TABLE `bridges` (
	`name` text PRIMARY KEY NOT NULL,
	`last_event_id` integer NOT NULL,
	`apikey_id` integer,
	FOREIGN KEY (`apikey_id`) REFERENCES `apikeys`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `clients_apikey_device_idx` ON `clients` (`apikey_id`,`device`);