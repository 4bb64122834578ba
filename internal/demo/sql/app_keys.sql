-- demo_app keys, indexes and foreign keys, added after the data is loaded.
--
-- The ON DELETE actions are mixed on purpose, as in real schemas:
--   CASCADE   ownership (a tenant's repos, a repo's issues, ...);
--   SET NULL  references that may outlive their target (authors, forks, a branch's head commit);
--   RESTRICT / NO ACTION  guards (a merchant behind stores, a branch under an open proposal,
--             a user who still collaborates, a storage option with children).
-- One guard blocks PostgreSQL's own DELETE of a tenant: webhooks.tenant_id was declared without
-- ON DELETE (so NO ACTION), and PostgreSQL checks it before the deeper cascade through repos has
-- removed those webhooks. The example policy handles it with an edge rule.
-- One foreign key column has no index on purpose: issue_comments.tenant_id (a slow cascade).

ALTER TABLE tenants ADD PRIMARY KEY (id);
ALTER TABLE tenants ADD CONSTRAINT tenants_slug_key UNIQUE (slug);

ALTER TABLE users ADD PRIMARY KEY (id);
ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email);

ALTER TABLE memberships ADD PRIMARY KEY (tenant_id, user_id);
CREATE INDEX memberships_user_id_idx ON memberships (user_id);

ALTER TABLE repos ADD PRIMARY KEY (id);
ALTER TABLE repos ADD CONSTRAINT repos_tenant_id_slug_key UNIQUE (tenant_id, slug);
CREATE INDEX repos_owner_id_idx ON repos (owner_id);
CREATE INDEX repos_fork_parent_id_idx ON repos (fork_parent_id);

ALTER TABLE issues ADD PRIMARY KEY (id);
ALTER TABLE issues ADD CONSTRAINT issues_repo_id_number_key UNIQUE (repo_id, number);
CREATE INDEX issues_author_id_idx ON issues (author_id);

ALTER TABLE issue_comments ADD PRIMARY KEY (id);
CREATE INDEX issue_comments_issue_id_idx ON issue_comments (issue_id);
CREATE INDEX issue_comments_author_id_idx ON issue_comments (author_id);
-- No index on issue_comments.tenant_id: deleting a tenant scans the whole table.

ALTER TABLE issue_labels ADD PRIMARY KEY (issue_id, label);

ALTER TABLE branches ADD PRIMARY KEY (id);
ALTER TABLE branches ADD CONSTRAINT branches_repo_id_name_key UNIQUE (repo_id, name);
CREATE INDEX branches_head_commit_id_idx ON branches (head_commit_id);

ALTER TABLE commits ADD PRIMARY KEY (id);
CREATE INDEX commits_repo_id_idx ON commits (repo_id);
CREATE INDEX commits_branch_id_idx ON commits (branch_id);
CREATE INDEX commits_author_id_idx ON commits (author_id);

ALTER TABLE objects ADD PRIMARY KEY (id);
CREATE INDEX objects_repo_id_idx ON objects (repo_id);
CREATE INDEX objects_commit_id_idx ON objects (commit_id);

ALTER TABLE proposals ADD PRIMARY KEY (id);
ALTER TABLE proposals ADD CONSTRAINT proposals_repo_id_number_key UNIQUE (repo_id, number);
CREATE INDEX proposals_head_branch_id_idx ON proposals (head_branch_id);
CREATE INDEX proposals_author_id_idx ON proposals (author_id);

ALTER TABLE proposal_comments ADD PRIMARY KEY (id);
CREATE INDEX proposal_comments_proposal_id_idx ON proposal_comments (proposal_id);
CREATE INDEX proposal_comments_author_id_idx ON proposal_comments (author_id);

ALTER TABLE collaborators ADD PRIMARY KEY (repo_id, user_id);
CREATE INDEX collaborators_user_id_idx ON collaborators (user_id);

ALTER TABLE webhooks ADD PRIMARY KEY (id);
-- The target of webhook_deliveries' composite foreign key.
ALTER TABLE webhooks ADD CONSTRAINT webhooks_repo_id_id_key UNIQUE (repo_id, id);
CREATE INDEX webhooks_tenant_id_idx ON webhooks (tenant_id);

ALTER TABLE webhook_deliveries ADD PRIMARY KEY (id);
CREATE INDEX webhook_deliveries_repo_id_webhook_id_idx ON webhook_deliveries (repo_id, webhook_id);

ALTER TABLE merchants ADD PRIMARY KEY (id);

ALTER TABLE stores ADD PRIMARY KEY (id);
-- A subdomain is taken while a live store holds it: the orphaned store of case 1 keeps it taken.
CREATE UNIQUE INDEX stores_subdomain_live_key ON stores (subdomain) WHERE deleted_at IS NULL;
CREATE INDEX stores_tenant_id_idx ON stores (tenant_id);
CREATE INDEX stores_merchant_id_idx ON stores (merchant_id);

ALTER TABLE hosted_sites ADD PRIMARY KEY (id);
ALTER TABLE hosted_sites ADD CONSTRAINT hosted_sites_subdomain_key UNIQUE (subdomain);
CREATE INDEX hosted_sites_tenant_id_idx ON hosted_sites (tenant_id);
CREATE INDEX hosted_sites_store_id_idx ON hosted_sites (store_id);

ALTER TABLE store_themes ADD PRIMARY KEY (id);
CREATE INDEX store_themes_store_id_idx ON store_themes (store_id);

ALTER TABLE content_pages ADD PRIMARY KEY (id);
CREATE INDEX content_pages_store_id_idx ON content_pages (store_id);
CREATE INDEX content_pages_theme_id_idx ON content_pages (theme_id);

ALTER TABLE store_platforms ADD PRIMARY KEY (store_id, platform);

ALTER TABLE storage_options ADD PRIMARY KEY (id);
CREATE INDEX storage_options_tenant_id_idx ON storage_options (tenant_id);
CREATE INDEX storage_options_parent_id_idx ON storage_options (parent_id);

-- Foreign keys.

ALTER TABLE memberships
    ADD CONSTRAINT memberships_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE,
    ADD CONSTRAINT memberships_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;

ALTER TABLE repos
    ADD CONSTRAINT repos_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE,
    ADD CONSTRAINT repos_owner_id_fkey FOREIGN KEY (owner_id) REFERENCES users (id) ON DELETE SET NULL,
    -- A fork survives its parent, possibly in another tenant.
    ADD CONSTRAINT repos_fork_parent_id_fkey FOREIGN KEY (fork_parent_id) REFERENCES repos (id) ON DELETE SET NULL;

ALTER TABLE issues
    ADD CONSTRAINT issues_repo_id_fkey FOREIGN KEY (repo_id) REFERENCES repos (id) ON DELETE CASCADE,
    ADD CONSTRAINT issues_author_id_fkey FOREIGN KEY (author_id) REFERENCES users (id) ON DELETE SET NULL;

ALTER TABLE issue_comments
    ADD CONSTRAINT issue_comments_issue_id_fkey FOREIGN KEY (issue_id) REFERENCES issues (id) ON DELETE CASCADE,
    -- A second path from tenants (a diamond), denormalised for reporting, and unindexed.
    ADD CONSTRAINT issue_comments_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE,
    ADD CONSTRAINT issue_comments_author_id_fkey FOREIGN KEY (author_id) REFERENCES users (id) ON DELETE SET NULL;

ALTER TABLE issue_labels
    ADD CONSTRAINT issue_labels_issue_id_fkey FOREIGN KEY (issue_id) REFERENCES issues (id) ON DELETE CASCADE;

ALTER TABLE branches
    ADD CONSTRAINT branches_repo_id_fkey FOREIGN KEY (repo_id) REFERENCES repos (id) ON DELETE CASCADE;

-- commits and branches refer to each other (a cycle through a nullable edge), and commits are
-- reached from repos both directly and through branches (a diamond).
ALTER TABLE commits
    ADD CONSTRAINT commits_repo_id_fkey FOREIGN KEY (repo_id) REFERENCES repos (id) ON DELETE CASCADE,
    ADD CONSTRAINT commits_branch_id_fkey FOREIGN KEY (branch_id) REFERENCES branches (id) ON DELETE CASCADE,
    ADD CONSTRAINT commits_author_id_fkey FOREIGN KEY (author_id) REFERENCES users (id) ON DELETE SET NULL;

ALTER TABLE branches
    ADD CONSTRAINT branches_head_commit_id_fkey FOREIGN KEY (head_commit_id) REFERENCES commits (id) ON DELETE SET NULL;

ALTER TABLE objects
    ADD CONSTRAINT objects_repo_id_fkey FOREIGN KEY (repo_id) REFERENCES repos (id) ON DELETE CASCADE,
    ADD CONSTRAINT objects_commit_id_fkey FOREIGN KEY (commit_id) REFERENCES commits (id) ON DELETE CASCADE;

ALTER TABLE proposals
    ADD CONSTRAINT proposals_repo_id_fkey FOREIGN KEY (repo_id) REFERENCES repos (id) ON DELETE CASCADE,
    -- A branch under a proposal cannot be deleted on its own; with its repo it goes.
    ADD CONSTRAINT proposals_head_branch_id_fkey FOREIGN KEY (head_branch_id) REFERENCES branches (id) ON DELETE RESTRICT,
    ADD CONSTRAINT proposals_author_id_fkey FOREIGN KEY (author_id) REFERENCES users (id) ON DELETE SET NULL;

ALTER TABLE proposal_comments
    ADD CONSTRAINT proposal_comments_proposal_id_fkey FOREIGN KEY (proposal_id) REFERENCES proposals (id) ON DELETE CASCADE,
    ADD CONSTRAINT proposal_comments_author_id_fkey FOREIGN KEY (author_id) REFERENCES users (id) ON DELETE SET NULL;

ALTER TABLE collaborators
    ADD CONSTRAINT collaborators_repo_id_fkey FOREIGN KEY (repo_id) REFERENCES repos (id) ON DELETE CASCADE,
    ADD CONSTRAINT collaborators_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE RESTRICT;

ALTER TABLE webhooks
    ADD CONSTRAINT webhooks_repo_id_fkey FOREIGN KEY (repo_id) REFERENCES repos (id) ON DELETE CASCADE,
    -- Declared without ON DELETE, as happens: NO ACTION. It blocks a plain DELETE of the tenant.
    ADD CONSTRAINT webhooks_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id);

ALTER TABLE webhook_deliveries
    ADD CONSTRAINT webhook_deliveries_webhook_fkey FOREIGN KEY (repo_id, webhook_id)
        REFERENCES webhooks (repo_id, id) ON DELETE CASCADE;

ALTER TABLE stores
    ADD CONSTRAINT stores_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE,
    ADD CONSTRAINT stores_merchant_id_fkey FOREIGN KEY (merchant_id) REFERENCES merchants (id) ON DELETE RESTRICT;

ALTER TABLE hosted_sites
    ADD CONSTRAINT hosted_sites_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE,
    -- A store cannot be deleted while a site uses it.
    ADD CONSTRAINT hosted_sites_store_id_fkey FOREIGN KEY (store_id) REFERENCES stores (id) ON DELETE RESTRICT;

ALTER TABLE store_themes
    ADD CONSTRAINT store_themes_store_id_fkey FOREIGN KEY (store_id) REFERENCES stores (id) ON DELETE CASCADE;

ALTER TABLE content_pages
    ADD CONSTRAINT content_pages_store_id_fkey FOREIGN KEY (store_id) REFERENCES stores (id) ON DELETE CASCADE,
    ADD CONSTRAINT content_pages_theme_id_fkey FOREIGN KEY (theme_id) REFERENCES store_themes (id) ON DELETE SET NULL;

ALTER TABLE store_platforms
    ADD CONSTRAINT store_platforms_store_id_fkey FOREIGN KEY (store_id) REFERENCES stores (id) ON DELETE CASCADE;

ALTER TABLE storage_options
    ADD CONSTRAINT storage_options_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE,
    -- A guard: an option with children cannot be deleted alone. A tenant's whole tree goes at once.
    ADD CONSTRAINT storage_options_parent_id_fkey FOREIGN KEY (parent_id) REFERENCES storage_options (id) ON DELETE RESTRICT;
