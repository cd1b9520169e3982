"""A synthetic but realistic MCP catalog for Code Mode benchmarks: what a portal's `tools/list` looks like with
4 to 100 servers.

Servers are modelled on real ones (GitHub, Slack, Jira, Stripe, Notion, Sentry, Gmail, Google Calendar, Linear,
PostgreSQL, PagerDuty, Google Drive). Each product has resources whose tools come from templates (list, get,
create, update, delete, search, as far as the product has them) plus a few hand-written actions, with
multi-sentence descriptions, input schemas with nested objects, enums, arrays, nullable fields and `$defs`, some
output schemas, and MCP annotations. Server `i` is product `i % 12`; later instances of a product get a suffix
(`github-eu`) and start at a different tool. Per-server tool counts cycle 11, 15, 12, 14: a mean of 13, and any 4
consecutive servers hold exactly 52 tools. Tool names are the portal's `<server>__<tool>`. Deterministic: the
same catalog on every run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TOOLS_PER_SERVER = (11, 15, 12, 14)  # cycled: mean 13, and any 4 consecutive servers hold 52
SEPARATOR = "__"  # the portal's default between server id and tool name

JSON = dict[str, Any]


# -- schema building blocks ---------------------------------------------------------------------------------


def text(description: str, **extra: Any) -> JSON:
    return {"type": "string", "description": description, **extra}


def integer(description: str, **extra: Any) -> JSON:
    return {"type": "integer", "description": description, **extra}


def boolean(description: str, default: bool = False) -> JSON:
    return {"type": "boolean", "description": description, "default": default}


def choice(description: str, values: list[str], default: str | None = None) -> JSON:
    schema: JSON = {"type": "string", "enum": values, "description": description}
    if default is not None:
        schema["default"] = default
    return schema


def strings(description: str, **extra: Any) -> JSON:
    return {"type": "array", "items": {"type": "string"}, "description": description, **extra}


def when(description: str) -> JSON:
    return {"type": "string", "format": "date-time", "description": description}


def nullable(schema: JSON) -> JSON:
    kind = schema.get("type")
    return {**schema, "type": [kind, "null"]} if isinstance(kind, str) else schema


@dataclass(frozen=True)
class Resource:
    noun: str  # "issue"
    plural: str  # "issues"
    about: str  # one sentence on what it is
    scope: dict[str, JSON]  # parameters that locate the collection (required everywhere)
    key: tuple[str, JSON]  # the identifying parameter
    fields: dict[str, JSON]  # writable fields
    required: tuple[str, ...]  # fields required to create one
    filters: dict[str, JSON]  # list filters
    sort: tuple[str, ...]  # sortable fields
    verbs: tuple[str, ...] = ("list", "get", "create", "update", "delete", "search")  # the tools it has


@dataclass(frozen=True)
class Domain:
    server: str  # server id, hyphens only
    product: str
    where: str  # "a repository", used in descriptions
    resources: tuple[Resource, ...]
    actions: tuple[JSON, ...]  # hand-written tools specific to the product
    output_schemas: bool  # whether its get tools declare an outputSchema


PAGE = {
    "per_page": integer("Page size.", minimum=1, maximum=100, default=30),
    "cursor": text("`next_cursor` of the previous page."),
}
ADDRESS = {
    "type": "object",
    "description": "Postal address.",
    "properties": {
        "line1": text("Street and number."),
        "line2": text("Apartment, suite or building."),
        "city": text("City or locality."),
        "postal_code": text("Postal or ZIP code."),
        "country": text("Two-letter ISO 3166-1 country code.", pattern="^[A-Z]{2}$"),
    },
    "required": ["line1", "city", "country"],
}
METADATA = {
    "type": "object",
    "description": "Up to 50 custom key-value pairs; keys up to 40 characters, values up to 500.",
    "additionalProperties": {"type": "string", "maxLength": 500},
}
GH_SCOPE = {
    "owner": text("Account owner of the repository (user or organization)."),
    "repo": text("Repository name without the .git extension."),
}
JIRA_SCOPE = {"project_key": text("Project key, e.g. `PLAT`.", pattern="^[A-Z][A-Z0-9]+$")}
SLACK_SCOPE: dict[str, JSON] = {}
STRIPE_SCOPE: dict[str, JSON] = {}


DEFS = {
    "property_value": {
        "description": "A database property value.",
        "anyOf": [
            {"type": "string"},
            {"type": "number"},
            {"type": "boolean"},
            {"type": "null"},
            {"type": "array", "items": {"type": "string"}},
        ],
    },
    "rich_text": {
        "type": "object",
        "properties": {
            "text": {
                "type": "object",
                "properties": {"content": {"type": "string"}, "link": {"type": ["string", "null"]}},
            }
        },
    },
    "when": {
        "type": "object",
        "description": "A date-time with zone, or a date for all-day events.",
        "properties": {
            "date_time": {"type": "string", "format": "date-time"},
            "date": {"type": "string", "format": "date"},
            "time_zone": {"type": "string"},
        },
    },
}


DOMAINS: tuple[Domain, ...] = (
    Domain(
        "github",
        "GitHub",
        "a repository",
        (
            Resource(
                "issue",
                "issues",
                "Issues track bugs, tasks and ideas; pull requests are not included.",
                GH_SCOPE,
                ("issue_number", integer("The number that identifies the issue in its repository.")),
                {
                    "title": text("Issue title."),
                    "body": text("Issue body in GitHub-flavoured Markdown."),
                    "labels": strings("Label names to set; unknown labels are created."),
                    "assignees": strings("Logins of users to assign (up to 10).", maxItems=10),
                    "milestone": nullable(integer("Milestone number.")),
                    "state_reason": choice("Why the state changed.", ["completed", "not_planned", "reopened"]),
                },
                ("title",),
                {
                    "state": choice("Filter by state.", ["open", "closed", "all"], "open"),
                    "labels": strings("Only issues with all of these labels."),
                    "since": when("Only issues updated at or after this time (ISO 8601)."),
                },
                ("created", "updated", "comments"),
            ),
            Resource(
                "pull_request",
                "pull_requests",
                "A pull request proposes merging a head branch into a base branch.",
                GH_SCOPE,
                ("pull_number", integer("The number that identifies the pull request.")),
                {
                    "title": text("Pull request title."),
                    "body": text("Description in Markdown."),
                    "head": text("Branch with the changes, `user:branch` for forks."),
                    "base": text("Branch to merge into, e.g. `main`."),
                    "draft": boolean("Open as a draft."),
                    "reviewers": {
                        "type": "object",
                        "description": "Who should review.",
                        "properties": {"users": strings("User logins."), "teams": strings("Team slugs.")},
                    },
                },
                ("title", "head", "base"),
                {
                    "state": choice("Filter by state.", ["open", "closed", "all"], "open"),
                    "base": text("Only pull requests into this branch."),
                },
                ("created", "updated", "popularity"),
                ("list", "get", "create", "update", "search"),
            ),
            Resource(
                "release",
                "releases",
                "A release packages a tagged version with notes and assets.",
                GH_SCOPE,
                ("release_id", integer("Numeric release ID.")),
                {
                    "tag_name": text("Tag to create or use, e.g. `v1.2.0`."),
                    "name": text("Release title."),
                    "body": text("Release notes in Markdown."),
                    "prerelease": boolean("Mark as a pre-release."),
                    "generate_release_notes": boolean("Generate notes from merged pull requests."),
                },
                ("tag_name",),
                {},
                ("created",),
                ("list", "get", "create", "update", "delete"),
            ),
        ),
        (
            {
                "name": "merge_pull_request",
                "description": "Merge a pull request. Fails when checks are failing, reviews are missing or the "
                "branch is out of date, unless the repository's rules allow it. The merge method must be allowed "
                "in the repository settings.",
                "inputSchema": {
                    "type": "object",
                    "properties": {
                        **GH_SCOPE,
                        "pull_number": integer("The pull request number."),
                        "merge_method": choice("How to merge.", ["merge", "squash", "rebase"], "merge"),
                        "commit_title": text("Title of the merge commit (merge and squash only)."),
                        "sha": text("Merge only if the head is still at this commit SHA."),
                    },
                    "required": ["owner", "repo", "pull_number"],
                },
                "annotations": {"title": "Merge pull request", "destructiveHint": True, "openWorldHint": True},
            },
            {
                "name": "get_file_contents",
                "description": "Get the contents of a file or directory in a repository. Files come back "
                "base64-encoded with their SHA, which update calls need; directories as a list of entries.",
                "inputSchema": {
                    "type": "object",
                    "properties": {
                        **GH_SCOPE,
                        "path": text("Path from the repository root."),
                        "ref": text("Branch, tag or commit SHA; defaults to the default branch."),
                    },
                    "required": ["owner", "repo", "path"],
                },
                "annotations": {"readOnlyHint": True, "openWorldHint": True},
            },
        ),
        False,
    ),
    Domain(
        "slack",
        "Slack",
        "the workspace",
        (
            Resource(
                "message",
                "messages",
                "Messages are posts in channels, direct messages or threads.",
                {"channel": text("Channel ID (C…, G… or D…), not the channel name.")},
                ("ts", text("Message timestamp, which is its ID, e.g. `1712345678.000100`.")),
                {
                    "text": text("Message text in Slack mrkdwn; also the notification fallback for blocks."),
                    "thread_ts": text("Reply in this thread."),
                    "blocks": {
                        "type": "array",
                        "description": "Block Kit layout blocks (up to 50).",
                        "maxItems": 50,
                        "items": {
                            "type": "object",
                            "properties": {
                                "type": choice("Block type.", ["section", "divider", "header", "context"]),
                                "text": {
                                    "type": "object",
                                    "properties": {
                                        "type": choice("Text object type.", ["mrkdwn", "plain_text"]),
                                        "text": text("The text."),
                                    },
                                    "required": ["type", "text"],
                                },
                            },
                            "required": ["type"],
                        },
                    },
                    "unfurl_links": boolean("Show link previews.", True),
                },
                ("text",),
                {
                    "oldest": text("Only messages after this timestamp."),
                    "latest": text("Only messages before this timestamp."),
                    "inclusive": boolean("Include messages exactly at oldest/latest."),
                },
                ("timestamp",),
            ),
            Resource(
                "channel",
                "channels",
                "Channels are public or private conversations in the workspace.",
                SLACK_SCOPE,
                ("channel", text("Channel ID.")),
                {
                    "name": text("Channel name: lowercase, no spaces, up to 80 characters.", maxLength=80),
                    "is_private": boolean("Create a private channel."),
                    "topic": text("Channel topic."),
                    "purpose": text("Channel purpose."),
                },
                ("name",),
                {
                    "types": strings("Conversation types: public_channel, private_channel, mpim, im."),
                    "exclude_archived": boolean("Leave out archived channels.", True),
                },
                ("name", "created", "members"),
            ),
            Resource(
                "user",
                "users",
                "Users are members and guests of the workspace.",
                SLACK_SCOPE,
                ("user", text("User ID, e.g. `U024BE7LH`.")),
                {
                    "status_text": text("Status text, up to 100 characters."),
                    "status_emoji": text("Status emoji, e.g. `:palm_tree:`."),
                    "status_expiration": integer("Unix time when the status clears; 0 keeps it."),
                },
                (),
                {"include_locale": boolean("Include each user's locale.")},
                ("name",),
                ("list", "get", "update", "search"),
            ),
        ),
        (
            {
                "name": "add_reaction",
                "description": "Add an emoji reaction to a message. Reacting twice with the same emoji is an "
                "error (`already_reacted`), not a toggle.",
                "inputSchema": {
                    "type": "object",
                    "properties": {
                        "channel": text("Channel ID of the message."),
                        "timestamp": text("Timestamp of the message."),
                        "name": text("Emoji name without colons, e.g. `thumbsup`."),
                    },
                    "required": ["channel", "timestamp", "name"],
                },
                "annotations": {"idempotentHint": False, "openWorldHint": True},
            },
        ),
        False,
    ),
    Domain(
        "jira",
        "Jira",
        "a project",
        (
            Resource(
                "issue",
                "issues",
                "Jira issues are stories, bugs, tasks and epics with a workflow status.",
                JIRA_SCOPE,
                ("issue_key", text("Issue key, e.g. `PLAT-123`.", pattern="^[A-Z][A-Z0-9]+-\\d+$")),
                {
                    "summary": text("One-line summary."),
                    "description": text("Description in Atlassian Document Format or plain text."),
                    "issue_type": choice("Issue type.", ["Story", "Bug", "Task", "Epic", "Sub-task"], "Task"),
                    "priority": choice("Priority.", ["Highest", "High", "Medium", "Low", "Lowest"]),
                    "assignee_account_id": nullable(text("Atlassian account ID of the assignee.")),
                    "labels": strings("Labels (no spaces)."),
                    "custom_fields": {
                        "type": "object",
                        "description": "Custom field values keyed by field ID, e.g. `customfield_10010`.",
                        "additionalProperties": True,
                    },
                },
                ("summary", "issue_type"),
                {
                    "jql": text('Extra JQL to AND with the project filter, e.g. `status = "In Progress"`.'),
                    "fields": strings("Fields to return; default: summary, status, assignee, updated."),
                },
                ("created", "updated", "priority", "rank"),
            ),
            Resource(
                "sprint",
                "sprints",
                "Sprints are time boxes on a Scrum board.",
                {"board_id": integer("Board ID.")},
                ("sprint_id", integer("Sprint ID.")),
                {
                    "name": text("Sprint name."),
                    "goal": text("Sprint goal."),
                    "start_date": when("Planned start."),
                    "end_date": when("Planned end."),
                },
                ("name",),
                {"state": choice("Filter by state.", ["future", "active", "closed"])},
                ("start_date",),
                ("list", "get", "create", "update", "delete"),
            ),
            Resource(
                "comment",
                "comments",
                "Comments are discussion on an issue, visible to everyone who can see the issue unless restricted.",
                {"issue_key": text("Key of the issue, e.g. `PLAT-123`.")},
                ("comment_id", text("Comment ID.")),
                {
                    "body": text("Comment text in Atlassian Document Format or plain text."),
                    "visibility": {
                        "type": "object",
                        "description": "Restrict who can see the comment.",
                        "properties": {
                            "type": choice("Restrict by group or project role.", ["group", "role"]),
                            "value": text("Group name or role name."),
                        },
                        "required": ["type", "value"],
                    },
                },
                ("body",),
                {},
                ("created",),
                ("list", "get", "create", "update", "delete"),
            ),
        ),
        (
            {
                "name": "transition_issue",
                "description": "Move an issue through its workflow, e.g. from To Do to In Progress. The "
                "available transitions depend on the issue's current status; list them with "
                "get_transitions first. Some transitions require fields such as a resolution.",
                "inputSchema": {
                    "type": "object",
                    "properties": {
                        "issue_key": text("Issue key, e.g. `PLAT-123`."),
                        "transition_id": text("Transition ID from get_transitions."),
                        "fields": {"type": "object", "description": "Fields the transition screen requires."},
                        "comment": text("Comment to add with the transition."),
                    },
                    "required": ["issue_key", "transition_id"],
                },
                "annotations": {"destructiveHint": False, "openWorldHint": True},
            },
        ),
        True,
    ),
    Domain(
        "stripe",
        "Stripe",
        "the Stripe account",
        (
            Resource(
                "customer",
                "customers",
                "Customers hold payment methods, addresses and billing history.",
                STRIPE_SCOPE,
                ("customer_id", text("Customer ID, e.g. `cus_NffrFeUfNV2Hib`.", pattern="^cus_")),
                {
                    "email": text("Email address.", format="email"),
                    "name": text("Full name or business name."),
                    "phone": text("Phone number in E.164 format."),
                    "address": ADDRESS,
                    "metadata": METADATA,
                    "tax_exempt": choice("Tax exemption.", ["none", "exempt", "reverse"], "none"),
                },
                ("email",),
                {
                    "email": text("Exact, case-sensitive email match."),
                    "created_after": when("Only customers created after this time."),
                },
                ("created",),
            ),
            Resource(
                "invoice",
                "invoices",
                "Invoices are statements of amounts owed by a customer, in the smallest currency unit.",
                STRIPE_SCOPE,
                ("invoice_id", text("Invoice ID, e.g. `in_1MtHbELkdIwHu7ix`.")),
                {
                    "customer": text("Customer ID to bill."),
                    "collection_method": choice(
                        "Charge automatically or email the invoice.", ["charge_automatically", "send_invoice"]
                    ),
                    "days_until_due": integer("Days until due (send_invoice only)."),
                    "lines": {
                        "type": "array",
                        "description": "Invoice items to add.",
                        "items": {
                            "type": "object",
                            "properties": {
                                "description": text("Line description."),
                                "amount": integer("Amount in the smallest currency unit, e.g. cents."),
                                "currency": text("Three-letter ISO currency code, lowercase."),
                                "quantity": integer("Quantity.", minimum=1, default=1),
                            },
                            "required": ["amount", "currency"],
                        },
                    },
                    "metadata": METADATA,
                },
                ("customer",),
                {
                    "customer": text("Only this customer's invoices."),
                    "status": choice("Filter by status.", ["draft", "open", "paid", "uncollectible", "void"]),
                },
                ("created", "due_date"),
            ),
            Resource(
                "refund",
                "refunds",
                "Refunds return all or part of a charge to the customer's payment method.",
                STRIPE_SCOPE,
                ("refund_id", text("Refund ID, e.g. `re_1Nispe2eZvKYlo2C`.")),
                {
                    "payment_intent": text("PaymentIntent to refund."),
                    "amount": integer("Amount to refund in the smallest currency unit; default: the rest."),
                    "reason": choice(
                        "Reason shown to the customer.", ["duplicate", "fraudulent", "requested_by_customer"]
                    ),
                },
                ("payment_intent",),
                {"payment_intent": text("Only refunds of this PaymentIntent.")},
                ("created",),
                ("list", "get", "create"),
            ),
        ),
        (),
        True,
    ),
    Domain(
        "notion",
        "Notion",
        "the workspace",
        (
            Resource(
                "page",
                "pages",
                "Pages hold blocks of content and, inside a database, typed properties.",
                {},
                ("page_id", text("Page ID (UUID, with or without dashes).")),
                {
                    "parent": {
                        "description": "Where the page lives: a page or a database.",
                        "oneOf": [
                            {
                                "type": "object",
                                "properties": {"page_id": text("Parent page ID.")},
                                "required": ["page_id"],
                            },
                            {
                                "type": "object",
                                "properties": {"database_id": text("Parent database ID.")},
                                "required": ["database_id"],
                            },
                        ],
                    },
                    "title": text("Page title."),
                    "properties": {
                        "type": "object",
                        "description": "Database property values keyed by property name.",
                        "additionalProperties": {"$ref": "#/$defs/property_value"},
                    },
                    "icon": nullable(text("An emoji to use as the icon.")),
                    "archived": boolean("Move the page to the trash."),
                },
                ("parent",),
                {"filter_properties": strings("Only these property IDs.")},
                ("last_edited_time",),
            ),
            Resource(
                "database",
                "databases",
                "Databases are collections of pages with a shared property schema.",
                {},
                ("database_id", text("Database ID (UUID).")),
                {
                    "parent_page_id": text("Page to create the database in."),
                    "title": text("Database title."),
                    "is_inline": boolean("Show inline in the parent page."),
                },
                ("parent_page_id", "title"),
                {},
                ("last_edited_time",),
            ),
            Resource(
                "comment",
                "comments",
                "Comments are attached to a page or to a discussion thread in it.",
                {"block_id": text("Page or block ID the comments belong to.")},
                ("discussion_id", text("Discussion thread ID.")),
                {
                    "rich_text": {
                        "type": "array",
                        "description": "Comment text as rich text objects.",
                        "items": {"$ref": "#/$defs/rich_text"},
                    }
                },
                ("rich_text",),
                {},
                ("created_time",),
                ("list", "create"),
            ),
        ),
        (
            {
                "name": "append_blocks",
                "description": "Append content blocks to the end of a page or block. Up to 100 blocks per call; "
                "nested children go in each block's `children`, two levels deep at most.",
                "inputSchema": {
                    "type": "object",
                    "properties": {
                        "block_id": text("Page or block ID to append to."),
                        "children": {
                            "type": "array",
                            "maxItems": 100,
                            "items": {
                                "type": "object",
                                "properties": {
                                    "type": choice(
                                        "Block type.",
                                        [
                                            "paragraph",
                                            "heading_1",
                                            "heading_2",
                                            "bulleted_list_item",
                                            "to_do",
                                            "code",
                                            "quote",
                                        ],
                                    ),
                                    "rich_text": {"type": "array", "items": {"$ref": "#/$defs/rich_text"}},
                                    "checked": boolean("to_do only."),
                                },
                                "required": ["type"],
                            },
                        },
                    },
                    "required": ["block_id", "children"],
                    "$defs": {"rich_text": DEFS["rich_text"]},
                },
                "annotations": {"destructiveHint": False, "openWorldHint": True},
            },
        ),
        False,
    ),
    Domain(
        "sentry",
        "Sentry",
        "an organization",
        (
            Resource(
                "issue",
                "issues",
                "Sentry issues group events that share a fingerprint, such as one exception at one place.",
                {"organization_slug": text("Organization slug.")},
                ("issue_id", text("Numeric issue ID or short ID such as `BACKEND-4Z`.")),
                {
                    "status": choice("Resolution status.", ["resolved", "unresolved", "ignored"]),
                    "assigned_to": nullable(text("`user:<id>` or `team:<id>`; null unassigns.")),
                    "has_seen": boolean("Mark as seen by you."),
                },
                (),
                {
                    "project": strings("Project slugs."),
                    "query": text("Sentry search syntax, e.g. `is:unresolved level:error`."),
                    "stats_period": choice("Window for event counts.", ["24h", "14d", "90d"], "24h"),
                    "environment": strings("Environments, e.g. production."),
                },
                ("date", "new", "freq", "user"),
                ("list", "get", "update", "delete", "search"),
            ),
            Resource(
                "event",
                "events",
                "Events are single occurrences of an error or transaction with stack trace, tags and context.",
                {"organization_slug": text("Organization slug."), "issue_id": text("Issue ID.")},
                ("event_id", text("32-character hex event ID, or `latest` / `oldest`.")),
                {},
                (),
                {
                    "full": boolean("Include the full event body (stack traces, breadcrumbs)."),
                    "start": when("Start of the time range."),
                    "end": when("End of the time range."),
                },
                ("timestamp",),
                ("list", "get", "search"),
            ),
            Resource(
                "release",
                "releases",
                "Releases mark deploys of a version so regressions can be tied to commits.",
                {"organization_slug": text("Organization slug.")},
                ("version", text("Release version, e.g. `backend@1.4.2`.")),
                {
                    "projects": strings("Project slugs this release belongs to."),
                    "ref": text("Commit SHA or tag."),
                    "date_released": when("When it was released; default: now."),
                    "commits": {
                        "type": "array",
                        "description": "Commits in the release.",
                        "items": {
                            "type": "object",
                            "properties": {
                                "id": text("Commit SHA."),
                                "repository": text("owner/repo."),
                                "message": text("Commit message."),
                            },
                            "required": ["id"],
                        },
                    },
                },
                ("projects",),
                {"query": text("Version prefix to match.")},
                ("date",),
                ("list", "get", "create", "update", "delete"),
            ),
        ),
        (
            {
                "name": "list_projects",
                "description": "List the organization's projects with their platform and teams. Project slugs "
                "are what other tools take as `project`.",
                "inputSchema": {
                    "type": "object",
                    "properties": {"organization_slug": text("Organization slug."), **PAGE},
                    "required": ["organization_slug"],
                },
                "annotations": {"readOnlyHint": True, "openWorldHint": True},
            },
            {
                "name": "get_trace",
                "description": "Get a distributed trace: every span and error across services for one trace ID, "
                "as a tree. Large traces are cut at `max_spans`.",
                "inputSchema": {
                    "type": "object",
                    "properties": {
                        "organization_slug": text("Organization slug."),
                        "trace_id": text("32-character hex trace ID."),
                        "max_spans": integer("Span cap.", minimum=1, maximum=5000, default=1000),
                    },
                    "required": ["organization_slug", "trace_id"],
                },
                "annotations": {"readOnlyHint": True, "openWorldHint": True},
            },
        ),
        True,
    ),
    Domain(
        "gmail",
        "Gmail",
        "the mailbox",
        (
            Resource(
                "message",
                "messages",
                "Messages are emails in the mailbox, identified by an immutable ID.",
                {},
                ("message_id", text("Message ID.")),
                {
                    "to": strings("Recipients (RFC 5322 addresses).", minItems=1),
                    "cc": strings("Cc recipients."),
                    "subject": text("Subject line."),
                    "body": text("Plain-text body; HTML is not sent."),
                    "reply_to_message_id": text("Send as a reply in this message's thread."),
                    "attachments": {
                        "type": "array",
                        "description": "Files to attach (total under 25 MB).",
                        "items": {
                            "type": "object",
                            "properties": {
                                "filename": text("File name."),
                                "mime_type": text("MIME type."),
                                "data_base64": text("File content, base64."),
                            },
                            "required": ["filename", "data_base64"],
                        },
                    },
                },
                ("to", "subject", "body"),
                {
                    "q": text("Gmail search query, e.g. `from:alice is:unread after:2026/01/01`."),
                    "label_ids": strings("Only messages with all of these label IDs."),
                    "include_spam_trash": boolean("Include Spam and Trash."),
                },
                ("date",),
            ),
            Resource(
                "label",
                "labels",
                "Labels organise messages and threads; system labels such as INBOX cannot be changed.",
                {},
                ("label_id", text("Label ID.")),
                {
                    "name": text("Display name; use `/` for nesting, e.g. `Clients/Acme`."),
                    "label_list_visibility": choice("Show in the label list.", ["labelShow", "labelHide"]),
                    "color": {
                        "type": "object",
                        "properties": {"text_color": text("Hex colour."), "background_color": text("Hex colour.")},
                    },
                },
                ("name",),
                {},
                ("name",),
                ("list", "get", "create", "update", "delete"),
            ),
            Resource(
                "draft",
                "drafts",
                "Drafts are unsent messages that can be edited and sent later.",
                {},
                ("draft_id", text("Draft ID.")),
                {"to": strings("Recipients."), "subject": text("Subject line."), "body": text("Plain-text body.")},
                (),
                {"q": text("Gmail search query over drafts.")},
                ("date",),
            ),
        ),
        (),
        False,
    ),
    Domain(
        "calendar",
        "Google Calendar",
        "a calendar",
        (
            Resource(
                "event",
                "events",
                "Events have a start and end, attendees, and optionally recurrence and a video link.",
                {"calendar_id": text("Calendar ID; `primary` for the user's main calendar.", default="primary")},
                ("event_id", text("Event ID.")),
                {
                    "summary": text("Title."),
                    "description": text("Description; may contain HTML."),
                    "start": {"$ref": "#/$defs/when"},
                    "end": {"$ref": "#/$defs/when"},
                    "attendees": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {"email": text("Attendee email."), "optional": boolean("Optional attendee.")},
                            "required": ["email"],
                        },
                    },
                    "recurrence": strings("RRULE, EXRULE, RDATE or EXDATE lines (RFC 5545)."),
                    "conference": boolean("Add a Google Meet link."),
                    "send_updates": choice("Who gets notified.", ["all", "externalOnly", "none"], "all"),
                },
                ("summary", "start", "end"),
                {
                    "time_min": when("Lower bound (exclusive) for an event's end time."),
                    "time_max": when("Upper bound (exclusive) for an event's start time."),
                    "single_events": boolean("Expand recurring events into instances.", True),
                },
                ("startTime", "updated"),
            ),
            Resource(
                "calendar",
                "calendars",
                "Calendars the user owns or is subscribed to.",
                {},
                ("calendar_id", text("Calendar ID.")),
                {"summary": text("Calendar name."), "time_zone": text("IANA time zone, e.g. `Europe/Paris`.")},
                ("summary",),
                {"min_access_role": choice("Minimum access role.", ["freeBusyReader", "reader", "writer", "owner"])},
                ("summary",),
            ),
            Resource(
                "acl_rule",
                "acl_rules",
                "Access rules say who may see or change a calendar.",
                {"calendar_id": text("Calendar ID.")},
                ("rule_id", text("Rule ID, e.g. `user:alice@example.com`.")),
                {
                    "role": choice("Access granted.", ["freeBusyReader", "reader", "writer", "owner"]),
                    "scope": {
                        "type": "object",
                        "properties": {
                            "type": choice("Who.", ["default", "user", "group", "domain"]),
                            "value": text("Email or domain; omitted for `default`."),
                        },
                        "required": ["type"],
                    },
                },
                ("role", "scope"),
                {},
                ("role",),
                ("list", "get", "create", "update", "delete"),
            ),
        ),
        (
            {
                "name": "find_free_time",
                "description": "Find free slots shared by several people. Looks at their busy times in the given "
                "window and returns slots of at least the requested length, within working hours if set.",
                "inputSchema": {
                    "type": "object",
                    "properties": {
                        "emails": strings("People whose calendars to check.", minItems=1),
                        "time_min": when("Window start."),
                        "time_max": when("Window end."),
                        "duration_minutes": integer("Slot length in minutes.", minimum=5),
                        "working_hours": {
                            "type": "object",
                            "properties": {
                                "start": text("HH:MM"),
                                "end": text("HH:MM"),
                                "time_zone": text("IANA time zone."),
                            },
                        },
                    },
                    "required": ["emails", "time_min", "time_max", "duration_minutes"],
                },
                "annotations": {"readOnlyHint": True, "openWorldHint": True},
            },
        ),
        True,
    ),
    Domain(
        "linear",
        "Linear",
        "a team",
        (
            Resource(
                "issue",
                "issues",
                "Linear issues belong to a team, move through workflow states and can be grouped in projects.",
                {"team_id": text("Team ID or key, e.g. `ENG`.")},
                ("issue_id", text("Issue ID or identifier such as `ENG-42`.")),
                {
                    "title": text("Issue title."),
                    "description": text("Markdown description."),
                    "priority": integer("0 none, 1 urgent, 2 high, 3 medium, 4 low.", minimum=0, maximum=4),
                    "state_id": text("Workflow state ID."),
                    "assignee_id": nullable(text("User ID; null unassigns.")),
                    "label_ids": strings("Label IDs (replaces existing labels)."),
                    "estimate": nullable({"type": "number", "description": "Estimate in points."}),
                    "due_date": nullable(text("Due date, YYYY-MM-DD.", format="date")),
                },
                ("title",),
                {
                    "state_type": choice(
                        "Filter by state type.", ["triage", "backlog", "unstarted", "started", "completed", "canceled"]
                    ),
                    "assignee": text("User ID or `me`."),
                    "include_archived": boolean("Include archived issues."),
                },
                ("createdAt", "updatedAt", "priority"),
            ),
            Resource(
                "project",
                "projects",
                "Projects group issues towards a goal with a target date.",
                {},
                ("project_id", text("Project ID.")),
                {
                    "name": text("Project name."),
                    "description": text("Short description."),
                    "team_ids": strings("Teams working on it.", minItems=1),
                    "target_date": nullable(text("Target date, YYYY-MM-DD.", format="date")),
                    "state": choice("Project state.", ["planned", "started", "paused", "completed", "canceled"]),
                },
                ("name", "team_ids"),
                {},
                ("createdAt",),
            ),
            Resource(
                "cycle",
                "cycles",
                "Cycles are a team's recurring iterations.",
                {"team_id": text("Team ID or key.")},
                ("cycle_id", text("Cycle ID.")),
                {"name": text("Cycle name."), "starts_at": when("Start."), "ends_at": when("End.")},
                ("starts_at", "ends_at"),
                {"is_active": boolean("Only the active cycle.")},
                ("startsAt",),
                ("list", "get", "create", "update"),
            ),
        ),
        (),
        False,
    ),
    Domain(
        "postgres",
        "PostgreSQL",
        "the database",
        (
            Resource(
                "table",
                "tables",
                "Tables in the connected database, with columns, types, constraints and row estimates.",
                {"schema": text("Schema name.", default="public")},
                ("table", text("Table name, unquoted.")),
                {
                    "columns": {
                        "type": "array",
                        "description": "Column definitions.",
                        "items": {
                            "type": "object",
                            "properties": {
                                "name": text("Column name."),
                                "type": text("SQL type, e.g. `text`, `bigint`, `timestamptz`."),
                                "nullable": boolean("Allow NULL.", True),
                                "default": text("Default expression."),
                            },
                            "required": ["name", "type"],
                        },
                    },
                    "primary_key": strings("Primary key columns."),
                },
                ("columns",),
                {"include_views": boolean("Include views and materialized views.")},
                ("name", "size"),
            ),
            Resource(
                "index",
                "indexes",
                "Indexes speed up lookups on a table at the cost of writes and disk.",
                {"schema": text("Schema name.", default="public")},
                ("index", text("Index name.")),
                {
                    "table": text("Table to index."),
                    "columns": strings("Columns or expressions, in order.", minItems=1),
                    "unique": boolean("Enforce uniqueness."),
                    "method": choice("Index method.", ["btree", "hash", "gin", "gist", "brin"], "btree"),
                    "concurrently": boolean("Build without locking writes (slower).", True),
                },
                ("table", "columns"),
                {"table": text("Only indexes of this table.")},
                ("name", "size"),
                ("list", "get", "create", "delete"),
            ),
            Resource(
                "role",
                "roles",
                "Roles are database users and groups with their privileges.",
                {},
                ("role", text("Role name.")),
                {
                    "login": boolean("Allow the role to log in."),
                    "password": nullable(text("New password; null removes it.")),
                    "member_of": strings("Roles to grant membership in."),
                    "connection_limit": integer("Maximum connections; -1 for no limit.", default=-1),
                },
                (),
                {"include_system": boolean("Include pg_* roles.")},
                ("name",),
                ("list", "get", "create", "update", "delete"),
            ),
        ),
        (
            {
                "name": "query",
                "description": "Run one read-only SQL statement in a transaction that is rolled back. Use $1, $2, "
                "... placeholders with `params` instead of inlining values. Results are capped at `max_rows`; "
                "statements that write are rejected.",
                "inputSchema": {
                    "type": "object",
                    "properties": {
                        "sql": text("A single SELECT, WITH or EXPLAIN statement."),
                        "params": {
                            "type": "array",
                            "description": "Values for $1, $2, ...",
                            "items": {"type": ["string", "number", "boolean", "null"]},
                        },
                        "max_rows": integer("Row cap.", minimum=1, maximum=10000, default=500),
                        "timeout_ms": integer("Statement timeout in milliseconds.", default=15000),
                    },
                    "required": ["sql"],
                },
                "outputSchema": {
                    "type": "object",
                    "properties": {
                        "columns": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {"name": {"type": "string"}, "type": {"type": "string"}},
                            },
                        },
                        "rows": {"type": "array", "items": {"type": "array"}},
                        "truncated": {"type": "boolean"},
                    },
                    "required": ["columns", "rows"],
                },
                "annotations": {"readOnlyHint": True, "openWorldHint": False},
            },
            {
                "name": "explain",
                "description": "Show the query plan for a statement without running it, or with ANALYZE, run it "
                "in a rolled-back transaction and show actual timings. Useful before querying large tables.",
                "inputSchema": {
                    "type": "object",
                    "properties": {
                        "sql": text("The statement to explain."),
                        "analyze": boolean("Run it and show actual row counts and timings."),
                        "format": choice("Plan format.", ["text", "json"], "text"),
                    },
                    "required": ["sql"],
                },
                "annotations": {"readOnlyHint": True, "openWorldHint": False},
            },
            {
                "name": "list_slow_queries",
                "description": "List the slowest statements recorded by pg_stat_statements, with calls, mean "
                "and total time. Requires the extension; returns an error explaining how to enable it if missing.",
                "inputSchema": {
                    "type": "object",
                    "properties": {
                        "limit": integer("How many statements.", minimum=1, maximum=100, default=20),
                        "order_by": choice("Sort key.", ["mean_time", "total_time", "calls"], "total_time"),
                    },
                },
                "annotations": {"readOnlyHint": True, "openWorldHint": False},
            },
        ),
        False,
    ),
    Domain(
        "pagerduty",
        "PagerDuty",
        "the account",
        (
            Resource(
                "incident",
                "incidents",
                "Incidents are problems that need a response, routed to a service's escalation policy.",
                {},
                ("incident_id", text("Incident ID, e.g. `PT4KHLK`.")),
                {
                    "title": text("Short description shown in notifications."),
                    "service_id": text("Service the incident is on."),
                    "urgency": choice("Urgency.", ["high", "low"], "high"),
                    "status": choice("Set the status.", ["acknowledged", "resolved"]),
                    "body": {"type": "object", "properties": {"details": text("Longer details.")}},
                    "escalation_level": integer("Escalate to this level.", minimum=1),
                },
                ("title", "service_id"),
                {
                    "statuses": {"type": "array", "items": {"enum": ["triggered", "acknowledged", "resolved"]}},
                    "service_ids": strings("Only these services."),
                    "since": when("Start of the range."),
                    "until": when("End of the range."),
                },
                ("created_at", "urgency"),
                ("list", "get", "create", "update", "search"),
            ),
            Resource(
                "service",
                "services",
                "Services are the things incidents are about: an application, component or team inbox.",
                {},
                ("service_id", text("Service ID.")),
                {
                    "name": text("Service name."),
                    "escalation_policy_id": text("Escalation policy to use."),
                    "auto_resolve_timeout": nullable(integer("Seconds before auto-resolve; null disables.")),
                },
                ("name", "escalation_policy_id"),
                {"query": text("Name contains this.")},
                ("name",),
            ),
            Resource(
                "schedule",
                "schedules",
                "Schedules say who is on call when.",
                {},
                ("schedule_id", text("Schedule ID.")),
                {"name": text("Schedule name."), "time_zone": text("IANA time zone.")},
                ("name",),
                {"query": text("Name contains this.")},
                ("name",),
                ("list", "get", "create", "update", "delete"),
            ),
        ),
        (
            {
                "name": "list_oncalls",
                "description": "List who is on call right now (or in a time range) per escalation policy and "
                "level. Use it to find whom to page before creating an incident.",
                "inputSchema": {
                    "type": "object",
                    "properties": {
                        "escalation_policy_ids": strings("Only these policies."),
                        "schedule_ids": strings("Only these schedules."),
                        "since": when("Start; default now."),
                        "until": when("End; default now."),
                    },
                },
                "annotations": {"readOnlyHint": True, "openWorldHint": True},
            },
        ),
        False,
    ),
    Domain(
        "drive",
        "Google Drive",
        "the user's Drive",
        (
            Resource(
                "file",
                "files",
                "Files and folders in My Drive and shared drives; Google Docs are exported on download.",
                {},
                ("file_id", text("File ID.")),
                {
                    "name": text("File name."),
                    "parents": strings("Folder IDs to put it in."),
                    "mime_type": text("MIME type; `application/vnd.google-apps.folder` for a folder."),
                    "content": text("Text content for new files."),
                    "starred": boolean("Star it."),
                    "properties": {
                        "type": "object",
                        "additionalProperties": {"type": "string"},
                        "description": "App-visible custom properties.",
                    },
                },
                ("name",),
                {
                    "q": text("Drive query, e.g. `name contains 'budget' and trashed = false`."),
                    "corpora": choice("Which files.", ["user", "drive", "allDrives"], "user"),
                    "drive_id": text("Shared drive ID (corpora=drive)."),
                },
                ("modifiedTime", "name", "createdTime"),
            ),
            Resource(
                "permission",
                "permissions",
                "Permissions grant users, groups or domains access to a file.",
                {"file_id": text("File or folder ID.")},
                ("permission_id", text("Permission ID.")),
                {
                    "role": choice("Access level.", ["reader", "commenter", "writer", "organizer", "owner"]),
                    "type": choice("Grantee type.", ["user", "group", "domain", "anyone"]),
                    "email_address": text("Grantee email (user or group)."),
                    "send_notification_email": boolean("Email the grantee.", True),
                },
                ("role", "type"),
                {},
                ("role",),
                ("list", "get", "create", "update", "delete"),
            ),
            Resource(
                "comment",
                "comments",
                "Comments are discussions anchored to a file, with replies.",
                {"file_id": text("File ID.")},
                ("comment_id", text("Comment ID.")),
                {
                    "content": text("Plain-text comment."),
                    "resolved": boolean("Mark the discussion resolved."),
                    "quoted_text": text("Text in the file the comment refers to."),
                },
                ("content",),
                {"include_deleted": boolean("Include deleted comments.")},
                ("modifiedTime",),
                ("list", "get", "create", "update", "delete"),
            ),
        ),
        (
            {
                "name": "export_file",
                "description": "Download a file's content. Google Docs, Sheets and Slides are exported to the "
                "requested format; other files come back as-is. Content over 10 MB is refused.",
                "inputSchema": {
                    "type": "object",
                    "properties": {
                        "file_id": text("File ID."),
                        "mime_type": choice(
                            "Export format.", ["text/plain", "text/markdown", "text/csv", "application/pdf"]
                        ),
                    },
                    "required": ["file_id"],
                },
                "annotations": {"readOnlyHint": True, "openWorldHint": True},
            },
        ),
        False,
    ),
)
SUFFIXES = ("", "-eu", "-staging", "-acme", "-labs", "-internal", "-us", "-legacy", "-ops")


def _refs(schema: Any) -> set[str]:
    if isinstance(schema, dict):
        found = {schema["$ref"].rsplit("/", 1)[1]} if isinstance(schema.get("$ref"), str) else set()
        for value in schema.values():
            found |= _refs(value)
        return found
    if isinstance(schema, list):
        return set().union(*(_refs(v) for v in schema)) if schema else set()
    return set()


def _input(properties: dict[str, JSON], required: list[str]) -> JSON:
    schema: JSON = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    refs = _refs(properties)
    if refs:
        schema["$defs"] = {name: DEFS[name] for name in sorted(refs)}
    return schema


def _resource_tools(domain: Domain, r: Resource) -> list[JSON]:
    key_name, key_schema = r.key
    scope = list(r.scope)
    noun = r.noun.replace("_", " ")
    plural = r.plural.replace("_", " ")
    in_where = f"in {domain.where}" if not r.scope else f"in the given {' and '.join(scope).replace('_', ' ')}"
    sort = {"sort": choice("Sort field.", list(r.sort), r.sort[0])} if len(r.sort) > 1 else {}
    tools: dict[str, JSON] = {
        "list": {
            "name": f"list_{r.plural}",
            "description": f"List {plural} {in_where}. {r.about} Paginated; newest first.",
            "inputSchema": _input({**r.scope, **r.filters, **sort, **PAGE}, scope),
            "annotations": {"title": f"List {domain.product} {plural}", "readOnlyHint": True, "openWorldHint": True},
        },
        "get": {
            "name": f"get_{r.noun}",
            "description": f"Get one {noun} by its {key_name}. Returns a not-found error if it does not exist "
            "or the connected account cannot see it.",
            "inputSchema": _input({**r.scope, key_name: key_schema}, [*scope, key_name]),
            "annotations": {"readOnlyHint": True, "openWorldHint": True},
        },
        "create": {
            "name": f"create_{r.noun}",
            "description": f"Create a {noun} {in_where}. Returns the new {noun} with its {key_name}.",
            "inputSchema": _input({**r.scope, **r.fields}, [*scope, *r.required]),
            "annotations": {"destructiveHint": False, "openWorldHint": True},
        },
        "update": {
            "name": f"update_{r.noun}",
            "description": f"Update a {noun}. Only the fields you pass change; the others keep their values.",
            "inputSchema": _input({**r.scope, key_name: key_schema, **r.fields}, [*scope, key_name]),
            "annotations": {"destructiveHint": True, "idempotentHint": True, "openWorldHint": True},
        },
        "delete": {
            "name": f"delete_{r.noun}",
            "description": f"Permanently delete a {noun}. This cannot be undone.",
            "inputSchema": _input({**r.scope, key_name: key_schema}, [*scope, key_name]),
            "annotations": {"destructiveHint": True, "idempotentHint": True, "openWorldHint": True},
        },
        "search": {
            "name": f"search_{r.plural}",
            "description": f"Search {plural} across {domain.product} by text. Quote phrases for exact matches; "
            "best matches first.",
            "inputSchema": _input(
                {
                    "query": text("Search text."),
                    **r.filters,
                    "limit": integer("Maximum hits.", minimum=1, maximum=100, default=20),
                },
                ["query"],
            ),
            "annotations": {"readOnlyHint": True, "openWorldHint": True},
        },
    }
    if domain.output_schemas and r.fields:
        shown = dict(list(r.fields.items())[:3])
        output = {"type": "object", "properties": {key_name: key_schema, **shown}, "required": [key_name]}
        refs = _refs(output)
        if refs:
            output["$defs"] = {name: DEFS[name] for name in sorted(refs)}
        tools["get"]["outputSchema"] = output
    return [tools[verb] for verb in r.verbs]


def domain_tools(domain: Domain) -> list[JSON]:
    """Every tool the domain's templates yield, round-robin over its resources (so any prefix covers all of
    them), with the product's own actions after the first six."""
    per_resource = [_resource_tools(domain, r) for r in domain.resources]
    interleaved = [group[i] for i in range(max(map(len, per_resource))) for group in per_resource if i < len(group)]
    return [*interleaved[:6], *domain.actions, *interleaved[6:]]


def build_catalog(servers: int) -> list[JSON]:
    """The portal's `tools/list` for `servers` servers: `<server>__<tool>` names, ~13 tools each."""
    catalog: list[JSON] = []
    for i in range(servers):
        domain = DOMAINS[i % len(DOMAINS)]
        instance = i // len(DOMAINS)
        server = domain.server + SUFFIXES[instance % len(SUFFIXES)] + (f"-{instance}" if instance >= 9 else "")
        tools = domain_tools(domain)
        count = TOOLS_PER_SERVER[i % len(TOOLS_PER_SERVER)]
        start = (instance * 5) % len(tools)
        chosen = [tools[(start + k) % len(tools)] for k in range(count)]
        catalog.extend({**tool, "name": f"{server}{SEPARATOR}{tool['name']}"} for tool in chosen)
    return catalog
