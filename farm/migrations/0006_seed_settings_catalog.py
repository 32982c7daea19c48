from django.db import migrations

from farm.config import SEEDED_SETTINGS


def seed(apps, schema_editor):
    SettingDefinition = apps.get_model("farm", "SettingDefinition")
    for setting in SEEDED_SETTINGS:
        fields = {key: value for key, value in setting.items() if key != "name"}
        SettingDefinition.objects.get_or_create(name=setting["name"], defaults=fields)


def unseed(apps, schema_editor):
    names = [setting["name"] for setting in SEEDED_SETTINGS]
    SettingDefinition = apps.get_model("farm", "SettingDefinition")
    SettingDefinition.objects.filter(name__in=names, values__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("farm", "0005_config_layers")]
    operations = [migrations.RunPython(seed, unseed)]
