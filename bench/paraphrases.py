"""Questions for the answer cache's threshold and hit rate: pairs that ask the same thing, and pairs that do not.

The different pairs are chosen to be hard: same topic, many shared words, one word that changes
the answer ("my" / "your", "add" / "remove", "before" / "after"). A threshold must serve the
first kind and refuse every one of the second.
"""

from __future__ import annotations

PARAPHRASES: list[tuple[str, str]] = [
    ("How do I reset my password?", "How can I reset my password?"),
    ("How do I reset my password?", "What's the way to reset my password?"),
    ("Where is a run request stored?", "Where are run requests stored?"),
    ("What is the refund policy?", "What's your refund policy?"),
    ("How long does shipping take?", "How long will shipping take?"),
    ("Can I change my subscription plan?", "Is it possible to change my subscription plan?"),
    ("How do I contact customer support?", "How can I contact customer support?"),
    ("What payment methods do you accept?", "Which payment methods do you accept?"),
    ("How do I export my data?", "How can I export my data?"),
    ("What are your opening hours?", "What are your business hours?"),
    ("Does the API support streaming?", "Does the API support streaming responses?"),
    ("How do I cancel my order?", "How can I cancel an order?"),
    ("What is the maximum upload size?", "What's the max upload size?"),
    ("How do I enable two-factor authentication?", "How can I turn on two-factor authentication?"),
    ("Is my data encrypted at rest?", "Is my data encrypted when stored?"),
    ("How many users can a team have?", "How many users can be in a team?"),
    ("Where can I find my invoices?", "Where do I find my invoices?"),
    ("How do I delete my account?", "How can I delete my account?"),
    ("What regions is the service available in?", "In which regions is the service available?"),
    ("How do I rotate an API key?", "How can I rotate my API key?"),
]

DIFFERENT: list[tuple[str, str]] = [
    ("Can I delete my data?", "Can I delete your data?"),
    ("How do I add a user to a team?", "How do I remove a user from a team?"),
    ("What happens before a run starts?", "What happens after a run ends?"),
    ("How do I reset my password?", "How do I reset my username?"),
    ("What is the refund policy?", "What is the shipping policy?"),
    ("How long does shipping take?", "How much does shipping cost?"),
    ("How do I cancel my order?", "How do I track my order?"),
    ("What is the maximum upload size?", "What is the minimum upload size?"),
    ("Is my data encrypted at rest?", "Is my data encrypted in transit?"),
    ("How do I export my data?", "How do I import my data?"),
    ("Where can I find my invoices?", "Where can I find my receipts?"),
    ("How do I enable two-factor authentication?", "How do I disable two-factor authentication?"),
    ("Does the API support streaming?", "Does the API support batching?"),
    ("How many users can a team have?", "How many teams can a user have?"),
    ("What payment methods do you accept?", "What currencies do you accept?"),
    ("How do I rotate an API key?", "How do I revoke an API key?"),
    ("What are your opening hours?", "What are your holiday closures?"),
    ("Can I change my subscription plan?", "Can I pause my subscription plan?"),
    ("How do I delete my account?", "How do I create an account?"),
    ("Where is a run request stored?", "Where is a run result stored?"),
]
