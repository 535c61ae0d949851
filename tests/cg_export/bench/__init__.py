"""Tests mirror the packages; a package so their folders need no unique file names and never shadow the real ones."""
