-- The language a member chose for pages and mail: a code with a message
-- catalogue (internal/i18n/locales), such as 'en' or 'uk'. NULL leaves it
-- to their browser's Accept-Language, then to DEFAULT_LANGUAGE. No CHECK
-- lists the codes: a new language is a catalogue file, not a migration.
ALTER TABLE members ADD COLUMN language TEXT;

-- The language of the page a member joined from (signing up or paying
-- before signing in). Mail to a member who chose no language is written in
-- it, since mail has no browser to ask; pages still follow the browser.
ALTER TABLE members ADD COLUMN joined_language TEXT;
