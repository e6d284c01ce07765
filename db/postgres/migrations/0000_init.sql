CREATE TABLE "apikeys" (
	"id" integer PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "apikeys_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 2147483647 START WITH 1 CACHE 1),
	"key_hash" text NOT NULL,
	"permission" text NOT NULL,
	"created" bigint NOT NULL,
	"revoked" bigint,
	CONSTRAINT "apikeys_key_hash_unique" UNIQUE("key_hash")
);
--> statement-breakpoint
CREATE TABLE "clients" (
	"id" integer PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "clients_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 2147483647 START WITH 1 CACHE 1),
	"device" text,
	"location" text,
	"session_hash" text NOT NULL,
	"apikey_id" integer NOT NULL,
	"created" bigint NOT NULL,
	"last_active" bigint NOT NULL,
	CONSTRAINT "clients_session_hash_unique" UNIQUE("session_hash")
);
--> statement-breakpoint
CREATE TABLE "events" (
	"id" integer PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "events_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 2147483647 START WITH 1 CACHE 1),
	"client_id" integer NOT NULL,
	"device" text,
	"name" text NOT NULL,
	"location" text,
	"action" text,
	"value" text,
	"time" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "subscriptions" (
	"id" integer PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "subscriptions_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 2147483647 START WITH 1 CACHE 1),
	"client_id" integer NOT NULL,
	"event_name" text NOT NULL,
	"location" text
);
--> statement-breakpoint
ALTER TABLE "clients" ADD CONSTRAINT "clients_apikey_id_apikeys_id_fk" FOREIGN KEY ("apikey_id") REFERENCES "public"."apikeys"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "events" ADD CONSTRAINT "events_client_id_clients_id_fk" FOREIGN KEY ("client_id") REFERENCES "public"."clients"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "subscriptions" ADD CONSTRAINT "subscriptions_client_id_clients_id_fk" FOREIGN KEY ("client_id") REFERENCES "public"."clients"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "clients_last_active_idx" ON "clients" USING btree ("last_active");--> statement-breakpoint
CREATE INDEX "events_name_id_idx" ON "events" USING btree ("name","id");--> statement-breakpoint
CREATE INDEX "events_client_id_idx" ON "events" USING btree ("client_id","id");--> statement-breakpoint
CREATE UNIQUE INDEX "subscriptions_client_event_idx" ON "subscriptions" USING btree ("client_id","event_name");