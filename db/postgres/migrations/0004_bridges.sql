CREATE TABLE "bridges" (
	"name" text PRIMARY KEY NOT NULL,
	"last_event_id" integer NOT NULL,
	"apikey_id" integer
);
--> statement-breakpoint
ALTER TABLE "bridges" ADD CONSTRAINT "bridges_apikey_id_apikeys_id_fk" FOREIGN KEY ("apikey_id") REFERENCES "public"."apikeys"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "clients_apikey_device_idx" ON "clients" USING btree ("apikey_id","device");