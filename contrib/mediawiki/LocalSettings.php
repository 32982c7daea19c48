<?php
/**
 * The wiki farm's one LocalSettings.php: nobody edits it. Point MediaWiki at it with
 *
 *   MW_CONFIG_FILE=/opt/portal/contrib/mediawiki/LocalSettings.php
 *
 * (web server and maintenance scripts alike: `php maintenance/update.php --wiki=<id>`).
 * Everything comes from the environment or from the file FARM_MW_SETTINGS_FILE names
 * (KEY=value lines or a PHP file returning an array; see FarmEnvironment.php), the
 * environment winning. Secrets take KEY or KEY_FILE (a file holding the value).
 *
 *   FARM_DATA_DIR               the portal's data folder (default: <repo>/var)
 *   FARM_EXPORT_DIR             the portal's exports (default: <data dir>/exports)
 *   FARM_MW_STATE_DIR           MediaWiki's own state (default: <data dir>/mediawiki)
 *   FARM_MW_SELECT_BY           path (default: /<id>/...) or host
 *   FARM_MW_DB_SERVER           MariaDB host[:port] (default 127.0.0.1), for every cluster
 *   FARM_MW_DB_CLUSTERS         JSON {"cluster": "host[:port]"}, overrides the export's host
 *   FARM_MW_DB_USER             MariaDB account (default root)
 *   FARM_MW_DB_PASSWORD[_FILE]  its password (default empty)
 *   FARM_MW_SECRET_KEY[_FILE]   $wgSecretKey (64 hex digits). Without it, one is made once
 *                               in <state dir>/secret.key (0600) and kept: fine on one
 *                               server, but give every server of a farm the same one.
 *   FARM_MW_CACHE_DIR           $wgCacheDirectory (default <state dir>/cache, created)
 *   FARM_MW_MAIN_CACHE          none | accel | db | memcached | redis (default: accel
 *                               when APCu is on, else none)
 *   FARM_MW_SESSION_CACHE       the same choices (default db: sessions in the wiki's
 *                               database, which survive restarts and are seen by every
 *                               server); redis or memcached in production
 *   FARM_MW_MEMCACHED_SERVERS   host:port,host:port
 *   FARM_MW_REDIS_SERVERS       host:port,host:port; FARM_MW_REDIS_PASSWORD[_FILE]
 *   FARM_MW_EXTENSIONS          extensions to load for every wiki, comma-separated
 *   FARM_MW_S3                  1: load Extension:AWS, uploads of wikis whose storage is
 *                               S3 go to their bucket and prefix (see FarmSettings.php);
 *                               FARM_MW_AWS_REGION (default us-east-1),
 *                               FARM_MW_AWS_KEY[_FILE] / FARM_MW_AWS_SECRET[_FILE]
 *                               (default: the AWS SDK's credential chain),
 *                               FARM_MW_AWS_BUCKET_DOMAIN ($wgAWSBucketDomain)
 *   FARM_PORTAL_URL             linked from the farm's error pages (default
 *                               http://127.0.0.1:8000/)
 *   FARM_MW_DEBUG               1: show exception details
 *
 * Then FarmSettings.php picks the wiki of the request (or of --wiki=<id>) and sets its
 * database, URL, storage and settings from <export dir>/wikis/<id>.json.
 */

if ( !defined( 'MEDIAWIKI' ) ) {
	exit( 1 );
}

require_once __DIR__ . '/FarmEnvironment.php';

$farmStateDir = WikiFarmEnvironment::stateDir();
if ( !is_dir( $farmStateDir ) ) {
	@mkdir( $farmStateDir, 0700, true );
}

// Databases. MariaDB: one account for every wiki (FarmSettings.php sets $wgDBname and the
// host of the wiki's cluster); SQLite wikis need none (the file is named by the export).
$wgDBtype = 'mysql';
$wgDBserver = WikiFarmEnvironment::get( 'FARM_MW_DB_SERVER', '127.0.0.1' );
$wgDBuser = WikiFarmEnvironment::get( 'FARM_MW_DB_USER', 'root' );
$wgDBpassword = WikiFarmEnvironment::secret( 'FARM_MW_DB_PASSWORD' ) ?? '';
$wgDBprefix = '';
$wgDBTableOptions = 'ENGINE=InnoDB, DEFAULT CHARSET=binary';
$farmClusters = WikiFarmEnvironment::get( 'FARM_MW_DB_CLUSTERS' );
$wgFarmDatabaseHosts = $farmClusters === null ? [] : json_decode( $farmClusters, true, 4,
	JSON_THROW_ON_ERROR );

/**
 * $wgSecretKey: given, or made once into <state dir>/secret.key and read from there after.
 * Never a key of the repository's.
 */
function wikiFarmSecretKey( string $stateDir ): string {
	$key = WikiFarmEnvironment::secret( 'FARM_MW_SECRET_KEY' );
	if ( $key !== null ) {
		return $key;
	}
	$file = "$stateDir/secret.key";
	$key = @file_get_contents( $file );
	if ( is_string( $key ) && strlen( trim( $key ) ) >= 32 ) {
		return trim( $key );
	}
	// Written to a private temporary file, then linked into place: concurrent first
	// requests all end up with the one key that won.
	$temp = "$file." . bin2hex( random_bytes( 6 ) ) . '.tmp';
	$old = umask( 0077 );
	$written = @file_put_contents( $temp, bin2hex( random_bytes( 32 ) ) . "\n" );
	umask( $old );
	if ( $written === false ) {
		throw new RuntimeException( "Set FARM_MW_SECRET_KEY(_FILE), or make $stateDir writable" );
	}
	@chmod( $temp, 0600 );
	@link( $temp, $file );
	@unlink( $temp );
	$key = @file_get_contents( $file );
	if ( !is_string( $key ) || strlen( trim( $key ) ) < 32 ) {
		throw new RuntimeException( "$file cannot be read back" );
	}
	return trim( $key );
}
$wgSecretKey = wikiFarmSecretKey( $farmStateDir );

// Caches. The localisation cache (CDB files) is shared: every wiki runs the same code.
$wgCacheDirectory = WikiFarmEnvironment::get( 'FARM_MW_CACHE_DIR', "$farmStateDir/cache" );
if ( !is_dir( $wgCacheDirectory ) ) {
	@mkdir( $wgCacheDirectory, 0700, true );
}
$farmApcu = function_exists( 'apcu_enabled' ) && apcu_enabled();
$farmMemcached = WikiFarmEnvironment::get( 'FARM_MW_MEMCACHED_SERVERS' );
if ( $farmMemcached !== null ) {
	$wgMemCachedServers = array_values( array_filter( array_map( 'trim',
		explode( ',', $farmMemcached ) ) ) );
}
$farmRedis = WikiFarmEnvironment::get( 'FARM_MW_REDIS_SERVERS' );
if ( $farmRedis !== null ) {
	$wgObjectCaches['redis'] = [
		'class' => RedisBagOStuff::class,
		'servers' => array_values( array_filter( array_map( 'trim', explode( ',', $farmRedis ) ) ) ),
		'password' => WikiFarmEnvironment::secret( 'FARM_MW_REDIS_PASSWORD' ),
		'persistent' => true,
		'automaticFailOver' => true,
	];
}
function wikiFarmCacheType( string $name, bool $apcu ) {
	switch ( $name ) {
		case 'none':
			return CACHE_NONE;
		case 'accel':
			return $apcu ? CACHE_ACCEL : CACHE_NONE;
		case 'db':
			return CACHE_DB;
		case 'memcached':
			return CACHE_MEMCACHED;
		case 'redis':
			return 'redis';
		default:
			throw new RuntimeException( "Unknown cache type $name (none, accel, db, memcached, redis)" );
	}
}
$wgMainCacheType = wikiFarmCacheType(
	WikiFarmEnvironment::get( 'FARM_MW_MAIN_CACHE', $farmApcu ? 'accel' : 'none' ), $farmApcu );
$wgSessionCacheType = wikiFarmCacheType(
	WikiFarmEnvironment::get( 'FARM_MW_SESSION_CACHE', 'db' ), $farmApcu );

// What every wiki has; each wiki's own settings (its export) come on top.
$wgLanguageCode = 'en';
$wgEnableUploads = false;
$wgUseInstantCommons = false;
$wgEnableEmail = false;
$wgPingback = false;
$wgDiff3 = is_executable( '/usr/bin/diff3' ) ? '/usr/bin/diff3' : '';
$wgImageMagickConvertCommand = '/usr/bin/convert';
$wgUseImageMagick = is_executable( $wgImageMagickConvertCommand );
wfLoadSkin( 'Vector' );
$wgDefaultSkin = 'vector';
foreach ( array_filter( array_map( 'trim',
	explode( ',', WikiFarmEnvironment::get( 'FARM_MW_EXTENSIONS', '' ) ) ) ) as $farmExtension
) {
	wfLoadExtension( $farmExtension );
}
if ( WikiFarmEnvironment::bool( 'FARM_MW_S3' ) ) {
	wfLoadExtension( 'AWS' );
	$wgFarmS3Extension = true;
	$wgAWSRegion = WikiFarmEnvironment::get( 'FARM_MW_AWS_REGION', 'us-east-1' );
	$farmAwsKey = WikiFarmEnvironment::secret( 'FARM_MW_AWS_KEY' );
	if ( $farmAwsKey !== null ) {
		$wgAWSCredentials = [
			'key' => $farmAwsKey,
			'secret' => WikiFarmEnvironment::secret( 'FARM_MW_AWS_SECRET' ),
			'token' => false,
		];
	}
	$farmAwsDomain = WikiFarmEnvironment::get( 'FARM_MW_AWS_BUCKET_DOMAIN' );
	if ( $farmAwsDomain !== null ) {
		$wgAWSBucketDomain = $farmAwsDomain;
	}
}
$wgShowExceptionDetails = WikiFarmEnvironment::bool( 'FARM_MW_DEBUG' );

// The farm.
$wgFarmExportDir = WikiFarmEnvironment::exportDir();
$wgFarmSelectBy = WikiFarmEnvironment::get( 'FARM_MW_SELECT_BY', 'path' );
$wgFarmPortalUrl = WikiFarmEnvironment::get( 'FARM_PORTAL_URL', 'http://127.0.0.1:8000/' );
require_once __DIR__ . '/FarmSettings.php';
// From here, $wgFarmWikiId and $wgFarmWiki describe the wiki being served.
