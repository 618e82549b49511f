-- Up Migration
-- Pending Google OAuth authorizations (the API server's connect -> callback). One row per
-- `state` handed to Google: bound to the organisation, the user who started it and the level
-- (org or user integration); single use (consumed_at), expiring (expires_at, 10 minutes).
-- The PKCE code verifier stays here, encrypted like the tokens (AES-256-GCM, bound to the row
-- id), and never leaves the server.
create table oauth_states (
  id uuid primary key, -- the state's nonce
  organisation_id uuid not null references organisations (id) on delete cascade,
  user_id uuid not null,
  level text not null check (level in ('org', 'user')),
  key_id text not null,
  code_verifier_ciphertext bytea not null,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  consumed_at timestamptz null,
  foreign key (organisation_id, user_id) references users (organisation_id, id) on delete cascade
);
create index oauth_states_expires_at on oauth_states (expires_at);

-- Down Migration
drop table if exists oauth_states;
