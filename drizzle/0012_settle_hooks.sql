CREATE TABLE "settle_hooks" (
	"name" text PRIMARY KEY NOT NULL,
	"fn" "regprocedure" NOT NULL
);
