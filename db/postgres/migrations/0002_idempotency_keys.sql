CREATE TABLE "idempotency_keys" (
	"apikey_id" integer NOT NULL,
	"key" text NOT NULL,
	"event_id" integer NOT NULL,
	"created" bigint NOT NULL,
	CONSTRAINT "idempotency_keys_apikey_id_key_pk" PRIMARY KEY("apikey_id","key")
);
--> statement-breakpoint
ALTER TABLE "idempotency_keys" ADD CONSTRAINT "idempotency_keys_apikey_id_apikeys_id_fk" FOREIGN KEY ("apikey_id") REFERENCES "public"."apikeys"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "idempotency_keys" ADD CONSTRAINT "idempotency_keys_event_id_events_id_fk" FOREIGN KEY ("event_id") REFERENCES "public"."events"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "idempotency_keys_created_idx" ON "idempotency_keys" USING btree ("created");