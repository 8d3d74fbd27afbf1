-- The posts table: the one source of truth for the schema, applied by postdb.Migrate (and so by
-- writebackd on start). Statements are separated by a semicolon at the end of a line. Keep it
-- idempotent and MySQL 8 compatible: MariaDB runs it in tests and compose, MySQL 8 in some
-- deployments.
CREATE TABLE IF NOT EXISTS posts (
  post_id    BIGINT UNSIGNED NOT NULL,
  user_id    BIGINT UNSIGNED NOT NULL,
  contents   TEXT            NOT NULL,
  url        VARCHAR(2048)   NULL,
  scrap      JSON            NULL,
  created_at DATETIME(3)     NOT NULL,
  PRIMARY KEY (post_id),
  KEY user_post (user_id, post_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
