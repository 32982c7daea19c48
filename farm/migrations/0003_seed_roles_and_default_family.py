from django.db import migrations

ROLES = ("wiki-admin", "ops", "auditor")


def seed(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for role in ROLES:
        Group.objects.get_or_create(name=role)
    apps.get_model("farm", "Family").objects.get_or_create(
        name="default", defaults={"database_pattern": "wiki_{id}", "description": "Default family"}
    )


class Migration(migrations.Migration):
    dependencies = [("farm", "0002_seed_reserved_names"), ("auth", "0012_alter_user_first_name_max_length")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
