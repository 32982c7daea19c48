"""Strict input: DRF's fields coerce (123 -> "123", "5" -> 5); scripts get a 400 instead,
and a field the endpoint does not know is an error, not silently ignored."""

from __future__ import annotations

from rest_framework import serializers


class StrictCharField(serializers.CharField):
    default_error_messages = {"invalid": "Must be a string."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    default_error_messages = {"invalid": "Must be an integer."}

    def to_internal_value(self, data):
        if not isinstance(data, int) or isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)


def string_list(**kwargs) -> serializers.ListField:
    return serializers.ListField(child=StrictCharField(max_length=150), max_length=100, **kwargs)


class StrictSerializer(serializers.Serializer):
    """A write serializer that rejects fields it does not declare."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {name: ["Unknown field: this endpoint does not accept it."] for name in unknown}
                )
        return super().to_internal_value(data)


class EmptyBodySerializer(StrictSerializer):
    """For actions whose only input is the URL: an empty object (or no body at all)."""
