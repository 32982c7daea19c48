<?php
/**
 * Per-request cost of contrib/mediawiki/FarmSettings.php, timed in PHP (bench/php.py runs it).
 *
 *   php [-d apc.enable_cli=1] bench/php_include.php <export dir> <mode> <requests> <wikis>
 *
 * The export dir holds wikis/w0000001.json ... w<wikis>.json, hosts.json and the old
 * whole-farm farm.json. Every simulated request picks a random wiki, sets $_SERVER for it,
 * and hrtime() is read around exactly what the include does per request:
 * - path: WikiFarmSettings::setUp() with $wgFarmSelectBy = 'path' (/<id>/index.php/...);
 * - host: setUp() by host for the wikis at <id>.wikis.example.org (the first label is
 *   the id: hosts.json is not read);
 * - host-custom: setUp() by host for the wikis with a custom host (every 10th), found
 *   through hosts.json;
 * - old-farm-json: the include before wikis/<id>.json: farm.json decoded (or fetched from
 *   APCu) per request, the wiki picked from it, and the same database/URL/settings applied;
 * - floor: stat + file_get_contents + json_decode of the wiki's file, nothing else.
 * Globals set by a request are reset before the next one, and the stat cache cleared
 * (php-fpm does both between requests); APCu lives on across requests, as in php-fpm.
 * The requests are run twice with the same wikis: the first pass fills APCu (when on).
 *
 * Prints JSON: {"cold_us": [...], "warm_us": [...], ...}.
 */

define( 'MEDIAWIKI', true );
define( 'WIKI_FARM_SETTINGS_NO_SETUP', true );
require __DIR__ . '/../contrib/mediawiki/FarmSettings.php';

if ( $argc !== 5 ) {
	fwrite( STDERR, "usage: php_include.php <export dir> <mode> <requests> <wikis>\n" );
	exit( 2 );
}
[ , $dir, $mode, $requests, $wikis ] = $argv;
$requests = (int)$requests;
$wikis = (int)$wikis;
const MODES = [ 'path', 'host', 'host-custom', 'old-farm-json', 'floor' ];
if ( !in_array( $mode, MODES, true ) || $requests < 1 || $wikis < 1 ) {
	fwrite( STDERR, "bad arguments\n" );
	exit( 2 );
}

// Farm-wide settings as a LocalSettings.php has them before the include (MediaWiki's
// defaults for the merged ones, roughly), restored before every request.
$farm = [
	'wgDBtype' => 'mysql',
	'wgDBserver' => 'localhost',
	'wgDBuser' => 'wiki',
	'wgDBpassword' => 'secret',
	'wgSecretKey' => str_repeat( 'a', 64 ),
	'wgFarmExportDir' => $dir,
	'wgFarmSelectBy' => str_starts_with( $mode, 'host' ) ? 'host' : 'path',
	'wgFarmDatabaseHosts' => [],
	'wgReadOnly' => null,
	'wgGroupPermissions' => [
		'*' => [ 'createaccount' => true, 'read' => true, 'edit' => true,
			'createpage' => true, 'createtalk' => true, 'writeapi' => true ],
		'user' => [ 'move' => true, 'move-subpages' => true, 'move-rootuserpages' => true,
			'move-categorypages' => true, 'movefile' => true, 'read' => true, 'edit' => true,
			'createpage' => true, 'createtalk' => true, 'writeapi' => true, 'upload' => true,
			'reupload' => true, 'reupload-shared' => true, 'minoredit' => true,
			'editmyusercss' => true, 'editmyuserjson' => true, 'editmyuserjs' => true,
			'purge' => true, 'sendemail' => true, 'applychangetags' => true,
			'changetags' => true, 'editcontentmodel' => true ],
		'autoconfirmed' => [ 'autoconfirmed' => true, 'editsemiprotected' => true ],
		'bot' => [ 'bot' => true, 'autoconfirmed' => true, 'editsemiprotected' => true,
			'nominornewtalk' => true, 'autopatrol' => true, 'suppressredirect' => true,
			'apihighlimits' => true, 'writeapi' => true ],
		'sysop' => [ 'block' => true, 'createaccount' => true, 'delete' => true,
			'bigdelete' => true, 'deletedhistory' => true, 'deletedtext' => true,
			'undelete' => true, 'editinterface' => true, 'editsitejson' => true,
			'edituserjson' => true, 'import' => true, 'importupload' => true, 'move' => true,
			'move-subpages' => true, 'move-rootuserpages' => true, 'patrol' => true,
			'autopatrol' => true, 'protect' => true, 'editprotected' => true,
			'rollback' => true, 'upload' => true, 'reupload' => true, 'unwatchedpages' => true,
			'autoconfirmed' => true, 'editsemiprotected' => true, 'ipblock-exempt' => true,
			'blockemail' => true, 'markbotedits' => true, 'apihighlimits' => true,
			'browsearchive' => true, 'noratelimit' => true, 'movefile' => true,
			'unblockself' => true, 'suppressredirect' => true, 'mergehistory' => true,
			'managechangetags' => true, 'deletechangetags' => true ],
		'interface-admin' => [ 'editinterface' => true, 'editsitecss' => true,
			'editsitejson' => true, 'editsitejs' => true, 'editusercss' => true,
			'edituserjson' => true, 'edituserjs' => true ],
		'bureaucrat' => [ 'userrights' => true, 'noratelimit' => true, 'renameuser' => true ],
	],
	'wgFileExtensions' => [ 'png', 'gif', 'jpg', 'jpeg', 'webp' ],
	'wgNamespacesWithSubpages' => [ 1 => true, 2 => true, 3 => true, 4 => true, 5 => true ],
	'wgDefaultUserOptions' => [ 'skin' => false, 'editfont' => 'monospace', 'rcdays' => 7,
		'rclimit' => 50, 'watchdefault' => 1 ],
];

function wikiId( int $n ): string {
	return sprintf( 'w%07d', $n );
}

/** The include before wikis/<id>.json, as it was: the whole farm in one file. */
function oldLoadExport( string $file ): array {
	$stat = stat( $file );
	$key = 'wikifarm-old:' . md5( $file ) . ':' . $stat['mtime'] . ':' . $stat['size'] . ':'
		. $stat['ino'];
	$apcu = function_exists( 'apcu_enabled' ) && apcu_enabled();
	if ( $apcu ) {
		$cached = apcu_fetch( $key, $found );
		if ( $found ) {
			return $cached;
		}
	}
	$export = json_decode( (string)file_get_contents( $file ), true );
	if ( $apcu ) {
		$GLOBALS['benchOldStored'] = apcu_store( $key, $export, 300 );
	}
	return $export;
}

function oldSetUp( string $dir ): void {
	$export = oldLoadExport( "$dir/farm.json" );
	$path = (string)parse_url( $_SERVER['REQUEST_URI'], PHP_URL_PATH );
	$id = preg_match( '#^/([^/]+)#', $path, $m ) ? $m[1] : null;
	if ( in_array( $id, $export['tombstones'], true ) ) {
		throw new RuntimeException( "$id is a tombstone" );
	}
	$wiki = $export['wikis'][$id];
	WikiFarmSettings::applyDatabase( $wiki['database'], $GLOBALS['wgFarmDatabaseHosts'] );
	WikiFarmSettings::applyUrl( $wiki['url'] );
	WikiFarmSettings::applySettings( $wiki['settings'], $export['merge_settings'] );
	$GLOBALS['wgFarmWikiId'] = $id;
	$GLOBALS['wgFarmWiki'] = $wiki;
}

function floorRead( string $dir, string $id ): array {
	$file = "$dir/wikis/$id.json";
	stat( $file );
	return json_decode( file_get_contents( $file ), true );
}

/** The samples of both passes, in microseconds. */
function run( string $dir, string $mode, int $requests, int $wikis, array $farm ): array {
	mt_srand( 20261122 );
	$picks = [];
	$custom = intdiv( $wikis, 10 );
	if ( $mode === 'host-custom' && $custom === 0 ) {
		fwrite( STDERR, "no wiki with a custom host at $wikis wikis\n" );
		exit( 2 );
	}
	for ( $i = 0; $i < $requests; $i++ ) {
		if ( $mode === 'host-custom' ) {
			$picks[] = 10 * mt_rand( 1, $custom );
			continue;
		}
		do {
			$n = mt_rand( 1, $wikis );
			// By host: the wikis at <id>.wikis.example.org (every 10th has a custom host).
		} while ( $mode === 'host' && $n % 10 === 0 );
		$picks[] = $n;
	}
	$baseline = array_fill_keys( array_keys( $GLOBALS ), true );
	$passes = [];
	foreach ( [ 'cold_us', 'warm_us' ] as $pass ) {
		$samples = [];
		foreach ( $picks as $n ) {
			// Reset what the previous request set, as a new php-fpm request would.
			foreach ( array_keys( $GLOBALS ) as $name ) {
				if ( !isset( $baseline[$name] ) ) {
					unset( $GLOBALS[$name] );
				}
			}
			foreach ( $farm as $name => $value ) {
				$GLOBALS[$name] = $value;
			}
			clearstatcache();
			$id = wikiId( $n );
			$host = $n % 10 === 0 ? "www.$id-custom.example.com" : "$id.wikis.example.org";
			$byHost = $farm['wgFarmSelectBy'] === 'host';
			$_SERVER['HTTP_HOST'] = $byHost ? $host : 'wikis.example.org';
			$_SERVER['REQUEST_URI'] = $byHost ? '/index.php/Main_Page' : "/$id/index.php/Main_Page";

			$start = hrtime( true );
			if ( $mode === 'old-farm-json' ) {
				oldSetUp( $dir );
			} elseif ( $mode === 'floor' ) {
				$wiki = floorRead( $dir, $id );
			} else {
				WikiFarmSettings::setUp( false );
			}
			$samples[] = ( hrtime( true ) - $start ) / 1000;

			$got = $mode === 'floor' ? $wiki['id'] : $GLOBALS['wgFarmWikiId'];
			if ( $got !== $id || ( $mode !== 'floor' && $GLOBALS['wgDBname'] !== "wiki_$id" ) ) {
				fwrite( STDERR, "request for $id set up $got\n" );
				exit( 1 );
			}
		}
		$passes[$pass] = $samples;
	}
	return $passes;
}

foreach ( $farm as $name => $value ) {
	$GLOBALS[$name] = $value;
}
$GLOBALS['benchOldStored'] = null;
$passes = run( $dir, $mode, $requests, $wikis, $farm );
echo json_encode( $passes + [
	'php_version' => PHP_VERSION,
	'apcu' => function_exists( 'apcu_enabled' ) && apcu_enabled(),
	// Whether the old mode's whole-farm array fitted in APCu (null: not tried).
	'old_apcu_stored' => $GLOBALS['benchOldStored'],
	'peak_memory_bytes' => memory_get_peak_usage( true ),
] ), "\n";
