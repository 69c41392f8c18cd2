"""The |breakable filter: long tokens (emails, URLs, keys) are marked to break anywhere, ordinary words are left
whole, and everything is escaped."""
from __future__ import annotations

from saas.portal.marked_text import breakable


def test_long_tokens_are_marked_and_words_are_not():
    assert breakable("Thanks! Could the courier leave it?") == "Thanks! Could the courier leave it?"
    assert breakable("internationalization is 20 letters") == "internationalization is 20 letters"
    assert breakable("mail accounts-payable@northwind.example.com today") == (
        'mail <span class="token">accounts-payable@northwind.example.com</span> today')


def test_everything_is_escaped():
    assert breakable('<img src=x onerror="alert(1)"> <script>alert(document.cookie)</script>') == (
        '&lt;img src=x onerror=&#34;alert(1)&#34;&gt; '
        '<span class="token">&lt;script&gt;alert(document.cookie)&lt;/script&gt;</span>')
    assert breakable(None) == "" and breakable("") == ""
