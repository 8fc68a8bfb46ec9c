""".dockerignore rules: Docker's documented examples, then the cleaning and glob details."""

from __future__ import annotations

import pytest

from convox_provider.client.dockerignore import DockerIgnore, read_patterns
from convox_provider.client.errors import ConvoxInputError


def rules(text: str) -> DockerIgnore:
    return DockerIgnore(read_patterns(text))


# (dockerignore text, path, excluded?) — the examples of Docker's "Build context" page first.
DOCKER_DOCS = [
    ("# comment\n*/temp*\n*/*/temp*\ntemp?\n", "somedir/temporary.txt", True),
    ("# comment\n*/temp*\n*/*/temp*\ntemp?\n", "somedir/temp", True),
    ("# comment\n*/temp*\n*/*/temp*\ntemp?\n", "somedir/subdir/temporary.txt", True),
    ("# comment\n*/temp*\n*/*/temp*\ntemp?\n", "tempa", True),
    ("# comment\n*/temp*\n*/*/temp*\ntemp?\n", "tempb", True),
    ("# comment\n*/temp*\n*/*/temp*\ntemp?\n", "temporary.txt", False),
    ("# comment\n*/temp*\n*/*/temp*\ntemp?\n", "temp", False),
    ("# comment\n*/temp*\n*/*/temp*\ntemp?\n", "a/b/c/temp", False),
    ("# comment\n", "# comment", False),
    ("/foo/bar\n", "foo/bar", True),
    ("foo/bar\n", "foo/bar", True),
    ("foo/bar\n", "foo/bar/inside.txt", True),
    ("foo/bar\n", "bar", False),
    ("foo/bar\n", "x/foo/bar", False),
    ("**/*.go\n", "main.go", True),
    ("**/*.go\n", "cmd/tool/main.go", True),
    ("**/*.go\n", "main.go.txt", False),
    ("*.md\n!README.md\n", "CHANGELOG.md", True),
    ("*.md\n!README.md\n", "README.md", False),
    ("*.md\n!README*.md\nREADME-secret.md\n", "README-secret.md", True),
    ("*.md\n!README*.md\nREADME-secret.md\n", "README-public.md", False),
    ("*.md\n!README*.md\nREADME-secret.md\n", "notes.md", True),
    ("*.md\nREADME-secret.md\n!README*.md\n", "README-secret.md", False),
    ("*\n!src\n", "src/app.py", False),
    ("*\n!src\n", "Makefile", True),
    (".git\nnode_modules\n", ".git/config", True),
    (".git\nnode_modules\n", "web/node_modules/x.js", False),
    ("**/node_modules\n", "web/node_modules/x.js", True),
    ("*.md\n", "docs/guide.md", False),  # "*" never crosses "/"
]


@pytest.mark.parametrize(("text", "path", "excluded"), DOCKER_DOCS)
def test_docker_documentation_examples(text: str, path: str, excluded: bool) -> None:
    assert rules(text).excludes(path) is excluded


@pytest.mark.parametrize(
    ("pattern", "path", "excluded"),
    [
        ("./build/", "build/out.o", True),
        ("a//b/../c", "a/c", True),
        ("a//b/../c", "a/b", False),
        ("/", "anything", False),
        ("foo/**", "foo/x/y", True),
        ("foo/**", "foo", False),
        ("a/**/b", "a/b", True),
        ("a/**/b", "a/x/y/b", True),
        ("a/**/b", "a/x/y/c", False),
        ("**", "deep/down/file", True),
        ("?", "a", True),
        ("?", "ab", False),
        ("?", "a/b", True),  # the parent "a" matches
        ("[a-c]at", "bat", True),
        ("[a-c]at", "dat", False),
        ("[^a-c]at", "dat", True),
        ("[!x]y", "!y", True),  # "!" is an ordinary member, as in Go
        ("[!x]y", "zy", False),
        ("\\*.txt", "*.txt", True),
        ("\\*.txt", "a.txt", False),
        ("file.txt", "fileXtxt", False),  # "." is literal
        ("a+b(c)", "a+b(c)", True),
        ("[z-a]x", "mx", False),  # an empty range matches nothing
        ("ünï*", "ünïcode", True),
    ],
)
def test_glob_and_cleaning(pattern: str, path: str, excluded: bool) -> None:
    assert rules(pattern + "\n").excludes(path) is excluded


def test_reading_the_file() -> None:
    text = "\ufeff*.log\r\n  # not a comment: column 1 only\n\n  tmp/  \n!  keep.log\n#gone\n"
    assert read_patterns(text) == ["*.log", "# not a comment: column 1 only", "tmp", "!keep.log"]


def test_last_matching_line_decides() -> None:
    ignore = rules("logs\n!logs/keep\nlogs/keep/secret\n")
    assert ignore.excludes("logs/app.log")
    assert not ignore.excludes("logs/keep/readme")
    assert ignore.excludes("logs/keep/secret")
    assert ignore.excludes("logs/keep/secret/deeper")


@pytest.mark.parametrize(
    ("text", "directory", "walk"),
    [
        ("logs\n", "logs", False),  # no exception: skip the whole directory
        ("logs\n!logs/keep\n", "logs", True),
        ("logs\n!other/keep\n", "logs", False),
        ("*\n!**/*.py\n", "deep", True),  # Docker's prefix check would miss this one
        ("*\n!src/*.py\n", "src", True),
        ("*\n!src/*.py\n", "docs", False),
        ("build\n!build\n", "build", True),
        ("a\n!a/b/c\n", "a/b", True),
        ("a\n!a/x/c\n", "a/b", False),
    ],
)
def test_excluded_directories_are_walked_when_an_exception_may_apply(
    text: str, directory: str, walk: bool
) -> None:
    ignore = rules(text)
    assert ignore.walk_excluded(directory) is walk


@pytest.mark.parametrize("text", ["!\n", "[\n", "a[b\n", "[]a]\n", "[a-]\n", "x\\\n"])
def test_invalid_patterns_are_refused(text: str) -> None:
    with pytest.raises(ConvoxInputError, match=r"invalid \.dockerignore pattern"):
        rules(text)


def test_missing_file_means_no_rules(tmp_path: object) -> None:
    ignore = DockerIgnore.for_directory(str(tmp_path))
    assert not ignore
    assert not ignore.excludes("anything")
