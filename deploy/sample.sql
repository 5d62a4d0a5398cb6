-- The sample table of the demo and the docker-compose deployment (both sites).
CREATE TABLE IF NOT EXISTS customer (
    id         bigint PRIMARY KEY,
    name       text NOT NULL,
    email      text,
    balance    numeric(12,2) DEFAULT 0,
    tags       text[],
    data       jsonb,
    docstatus  smallint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);
