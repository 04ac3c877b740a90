"""Unit tests of policy.py: `python3 -m unittest` in the project folder."""

import unittest

from policy import MAX_LENGTH, MIN_LENGTH, check, random_value


class PolicyTest(unittest.TestCase):
    def test_values_have_the_length_and_alphabet_asked_for(self):
        for length in (MIN_LENGTH, 24, 100, MAX_LENGTH):
            value = random_value(length)
            self.assertIsNone(check(value, length), value)

    def test_two_values_differ(self):
        self.assertNotEqual(random_value(24), random_value(24))

    def test_check_names_what_is_wrong(self):
        self.assertEqual(check("abc", 4), "3 characters, wanted 4")
        self.assertEqual(check("ab-d", 4), "characters outside letters and digits")


if __name__ == "__main__":
    unittest.main()
