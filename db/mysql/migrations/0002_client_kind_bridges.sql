CREATE TABLE `bridges` (
	`name` varchar(64) NOT NULL,
	`last_event_id` int NOT NULL,
	`apikey_id` int,
	CONSTRAINT `bridges_name` PRIMARY KEY(`name`)
);
--> statement-breakpoint
ALTER TABLE `clients` ADD `kind` varchar(6) DEFAULT 'device' NOT NULL;--> statement-breakpoint
ALTER TABLE `bridges` ADD CONSTRAINT `bridges_apikey_id_apikeys_id_fk` FOREIGN KEY (`apikey_id`) REFERENCES `apikeys`(`id`) ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX `clients_apikey_device_idx` ON `clients` (`apikey_id`,`device`);